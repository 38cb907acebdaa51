"""Falcon and Flask as they are deployed with observability (issue 19, "compare
what users run"): the peer apps of `falcon_app` and `flask_app`, each with a
per-route latency histogram of prometheus-client as WSGI middleware. Their
servers also write gunicorn's own access log (`bench/load.py` passes
`--access-logfile`), so each row does what `synwsgi+hooks` does: one access line
and one latency observation per request, in prometheus' multiprocess mode
when `PROMETHEUS_MULTIPROC_DIR` is set (the load group sets it for every server).

The route label comes from each framework's router, as the usual exporters
take it (a Falcon middleware component's `process_resource` reads
`req.uri_template`; a Flask `before_request` reads `request.url_rule`), so
paths with ids never become label values. `falcon` and `flask` are built on
first use: each process registers one histogram in the default registry.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import Histogram

from bench.wsgi_call import WSGIApp

ROUTE_KEY = "bench.route"
UNMATCHED = "unmatched"


class LatencyMiddleware:
    """Observes each request's time in the app (until it returns its body
    iterable, as common WSGI metrics middleware does) by method, route and status."""

    def __init__(self, app: WSGIApp, histogram: Histogram) -> None:
        self.app = app
        self.histogram = histogram

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        started = time.perf_counter()
        status: list[str] = []

        def capture(code: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            status.append(code[:3])
            return start_response(code, headers, exc_info)

        body = self.app(environ, capture)
        self.histogram.labels(
            environ["REQUEST_METHOD"], environ.get(ROUTE_KEY, UNMATCHED), status[0] if status else "500"
        ).observe(time.perf_counter() - started)
        return body


@functools.cache
def _histogram() -> Histogram:
    """One per process (both apps in one process share it)."""
    return Histogram("http_request_duration_seconds", "Time spent in the app", ["method", "route", "status"])


def create_falcon() -> WSGIApp:
    import falcon

    from bench.peers.falcon_app import create_app

    class RouteOfResource:
        def process_resource(
            self, req: falcon.Request, resp: falcon.Response, resource: Any, params: Any
        ) -> None:
            if req.uri_template is not None:
                req.env[ROUTE_KEY] = req.uri_template

    application = create_app()
    application.add_middleware(RouteOfResource())
    return LatencyMiddleware(application, _histogram())


def create_flask() -> WSGIApp:
    from flask import request

    from bench.peers.flask_app import app as flask_app

    @flask_app.before_request
    def route_of_request() -> None:
        if request.url_rule is not None:
            request.environ[ROUTE_KEY] = request.url_rule.rule

    flask_app.wsgi_app = LatencyMiddleware(flask_app.wsgi_app, _histogram())  # type: ignore[method-assign]
    return flask_app


_built: dict[str, WSGIApp] = {}
_BUILDERS = {"falcon": create_falcon, "flask": create_flask}


def __getattr__(name: str) -> Any:
    builder = _BUILDERS.get(name)
    if builder is None:
        raise AttributeError(name)
    if name not in _built:
        _built[name] = builder()
    return _built[name]
