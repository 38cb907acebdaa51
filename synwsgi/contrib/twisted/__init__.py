"""The Twisted bridge (`pip install synwsgi[twisted]`): Twisted code served from a synwsgi `Site`.

Synapse's servlets are `async def` methods that await Deferreds fired by a
Twisted reactor; a WSGI worker has no reactor. This package runs one in a
thread of the worker and lets synwsgi handlers wait for it:

* `ReactorThread`: the reactor, started once per worker process;
* `DeferredDriver`: `ServerConfig(async_driver=...)` that runs a handler's
  coroutine (or Deferred) on the reactor, waits for it in the request's
  thread or greenlet, and cancels it when the client leaves;
* `TwistedRequest`: a `Site(request_class=...)` answering the Twisted and
  Synapse request attributes that ported servlets read.

It imports Twisted, never Synapse: Synapse's classes reach it only as
objects the application hands over at run time (docs/synapse-bridge.rst).
Under gunicorn's gevent worker, import this package in the gunicorn config
file, before gevent patches the standard library (see `reactor`).
"""

from .driver import DeferredDriver, ForeignError
from .reactor import ReactorThread
from .request import HttpMethod, RequestInfo, TwistedRequest, TwistedResponseHeaders

__all__ = [
    "DeferredDriver",
    "ForeignError",
    "HttpMethod",
    "ReactorThread",
    "RequestInfo",
    "TwistedRequest",
    "TwistedResponseHeaders",
]
