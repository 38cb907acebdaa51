"""Loading the things under test: peer apps and the synwsgi pieces.

synwsgi is written concurrently with this suite, so every synwsgi import is
allowed to fail: callers turn :class:`Unavailable` into an "unavailable" row.
"""

from __future__ import annotations

import importlib
from typing import Any, cast

from bench.model import Unavailable
from bench.peers import PEER_MODULES
from bench.wsgi_call import WSGIApp

SYNWSGI = "synwsgi"
SYNWSGI_APP_SPEC = "bench.peers.synwsgi_app:app"
#: the same app on the opt-in mypyc build (`bench/compiled.py`: a child process
#: or server whose sys.path starts with the compiled tree)
SYNWSGI_MYPYC = "synwsgi (mypyc)"
#: the same app with the access log, metrics and tracing hooks (in-process rows only)
SYNWSGI_OBSERVED = "synwsgi+observability"
SYNWSGI_OBSERVED_SPEC = "bench.peers.synwsgi_app:app_observed"
#: the same app with the production hooks (access log to a file, metrics in
#: multiprocess mode), under gunicorn (load rows)
SYNWSGI_PRODUCTION = "synwsgi+hooks"
SYNWSGI_PRODUCTION_SPEC = "bench.peers.synwsgi_app:app_production"


def import_attr(module: str, attr: str) -> Any:
    """``module.attr``, or :class:`Unavailable` describing why not."""
    try:
        return getattr(importlib.import_module(module), attr)
    except Exception as exc:  # any import-time failure of code under test
        raise Unavailable(f"{module}.{attr}: {type(exc).__name__}: {exc}") from exc


def load_peer(name: str) -> WSGIApp:
    return cast(WSGIApp, import_attr(f"bench.peers.{PEER_MODULES[name]}", "app"))


def load_synwsgi_app(spec: str = SYNWSGI_APP_SPEC) -> WSGIApp:
    module, attr = spec.split(":")
    return cast(WSGIApp, import_attr(module, attr))


def gunicorn_spec(name: str) -> str:
    """The ``module:attr`` gunicorn should load for peer ``name`` or synwsgi."""
    if name == SYNWSGI:
        return SYNWSGI_APP_SPEC
    if name == SYNWSGI_PRODUCTION:
        return SYNWSGI_PRODUCTION_SPEC
    return f"bench.peers.{PEER_MODULES[name]}:app"
