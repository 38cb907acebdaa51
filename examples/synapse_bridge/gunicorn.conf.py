# ruff: noqa: N999 - gunicorn reads a file of this name
"""gunicorn settings for Synapse's client servlets through synwsgi's Twisted bridge.

From the repository root::

    gunicorn --config examples/synapse_bridge/gunicorn.conf.py

serves ``examples.synapse_bridge.app:app`` on ``$SYNWSGI_BIND`` (default
127.0.0.1:8008) with the homeserver config in ``$SYNWSGI_SYNAPSE_CONFIG``
(default: one written into ``./synapse-data``), gthread workers unless
``$SYNWSGI_WORKER_CLASS`` says ``gevent``.

One worker: a `SynapseHomeServer` is one process of Synapse (its caches,
stream ids and notifier live in it); two on one database would each think
they are the only writer. Scale it with Synapse's own worker processes, each
its own gunicorn, not with gunicorn workers.
"""

from __future__ import annotations

import logging.config
import os
import sys
from pathlib import Path

# Before gevent's worker patches the standard library (this file is read by
# the master, before the fork): the bridge's Twisted modules keep the real
# `threading` and `select.epoll`. The reactor itself starts in the worker.
import synwsgi.contrib.twisted  # noqa: F401

# The repository root, so that `examples.synapse_bridge` imports from any cwd.
_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

wsgi_app = "examples.synapse_bridge.app:app"
bind = [os.environ.get("SYNWSGI_BIND", "127.0.0.1:8008")]
worker_class = os.environ.get("SYNWSGI_WORKER_CLASS", "gthread")
workers = 1
# gthread: each parked /sync holds one thread; gevent: one connection.
threads = 32
worker_connections = 1000
# Long-polls are answered within /sync's own cap; the worker must outlive them.
timeout = 150
graceful_timeout = 10
keepalive = 75
loglevel = os.environ.get("SYNWSGI_LOG_LEVEL", "info")
# The access line is Synapse's "Processed request", from the app's AccessLogger hook.
accesslog = None
errorlog = "-"
control_socket_disable = True


def _log_to_stderr() -> None:
    """synwsgi's records (the access line included) to stderr; Synapse's at WARNING."""
    from synwsgi.observability.logcontext import logging_config

    config = logging_config(loglevel.upper())
    config["loggers"] = {"synapse": {"level": "WARNING"}}
    logging.config.dictConfig(config)


_log_to_stderr()
