"""The showcase app (`wsgi.app`) plus two endpoints the stress scripts need.

``GET /_stress/introspect[?collect=1]``
    the worker's own view of itself: pid, RSS (KiB), open fds, threads,
    live greenlets (0 without gevent), gc object count; `collect=1` runs a
    full `gc.collect()` first;
``GET /_stress/raise?token=T``
    raises `RuntimeError("stress-raise token=T")` on every request (a 500,
    logged once with its traceback).

Everything else goes to the showcase unchanged. Serve with
`gunicorn stress.app:app` (from the project root).
"""

from __future__ import annotations

import gc
import os
import sys
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

PROJECT_ROOT = Path(__file__).resolve().parents[1]
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

import wsgi  # noqa: E402 - needs the path above
from synwsgi import JsonResource, RestServlet, Site, SynapseRequest, parse_boolean, parse_string  # noqa: E402
from synwsgi.observability.accesslog import AccessLogger  # noqa: E402

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment


def _status_field(name: str) -> int:
    with open(f"/proc/{os.getpid()}/status") as status:
        for line in status:
            if line.startswith(name + ":"):
                return int(line.split()[1])
    return -1


def _greenlets() -> int:
    module = sys.modules.get("greenlet")
    if module is None:
        return 0
    kind = module.greenlet
    return sum(1 for obj in gc.get_objects() if isinstance(obj, kind) and not obj.dead)


class IntrospectServlet(RestServlet):
    PATTERNS = ["/_stress/introspect"]

    def on_GET(self, request: SynapseRequest) -> tuple[int, Any]:
        if parse_boolean(request, "collect", default=False):
            gc.collect()
        return 200, {
            "pid": os.getpid(),
            "rss_kib": _status_field("VmRSS"),
            "fds": len(os.listdir(f"/proc/{os.getpid()}/fd")),
            "threads": _status_field("Threads"),
            "python_threads": threading.active_count(),
            "greenlets": _greenlets(),
            "gc_objects": len(gc.get_objects()),
        }


class RaiseServlet(RestServlet):
    PATTERNS = ["/_stress/raise"]

    def on_GET(self, request: SynapseRequest) -> tuple[int, Any]:
        token = parse_string(request, "token", default="-")
        raise RuntimeError(f"stress-raise token={token}")


def _stress_site() -> Site:
    resource = JsonResource()
    IntrospectServlet().register(resource)
    RaiseServlet().register(resource)
    return Site({"/_stress": resource}, hooks=[AccessLogger("stress")])


_STRESS = _stress_site()
_SHOWCASE = wsgi.app


def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    if environ.get("PATH_INFO", "").startswith("/_stress/"):
        return _STRESS(environ, start_response)
    return _SHOWCASE(environ, start_response)


application = app
