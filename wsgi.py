"""The showcase app: a few Matrix client endpoints plus `/_demo/*` to try every feature.

Serve it with `gunicorn wsgi:app` (settings in gunicorn.conf.py), or run
`python wsgi.py` for the Werkzeug dev server on 127.0.0.1:8008. Either way the
Prometheus metrics are served on a listener of their own, never on the public
port: `SYNWSGI_METRICS_BIND` (127.0.0.1:9101 by default; empty: none).
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from http import HTTPStatus
from pathlib import Path
from typing import Any

import jinja2

import synwsgi
from synwsgi import (
    AuthError,
    Codes,
    DirectServeHtmlResource,
    JsonResource,
    LimitExceededError,
    NotFoundError,
    RedirectException,
    RestServlet,
    RootOptionsRedirectResource,
    ServerConfig,
    Site,
    StaticResource,
    SynapseError,
    SynapseRequest,
    cancellable,
    parse_integer,
    parse_json_object_from_request,
    parse_string,
)
from synwsgi.observability.accesslog import AccessLogger
from synwsgi.observability.metrics import ServerMetrics, start_metrics_server
from synwsgi.observability.tracing import tracing_hooks

WEBROOT = Path(synwsgi.__file__).parent / "webroot"


class DemoStats:
    """Per-process counters that tests and people read from `/_demo/stats`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts = {"cancelled": 0, "completed": 0, "streams_closed": 0}

    def incr(self, name: str) -> None:
        with self._lock:
            self.counts[name] += 1


STATS = DemoStats()


# -- /_matrix/client --------------------------------------------------------------


class VersionsServlet(RestServlet):
    PATTERNS = ["/_matrix/client/versions"]

    def on_GET(self, request: SynapseRequest) -> tuple[int, Any]:
        return 200, {"versions": ["r0.6.1", "v1.1", "v1.11", "v1.12"]}


class RoomStateServlet(RestServlet):
    # Synapse's own regex style; the state key is optional.
    PATTERNS = [
        re.compile(
            r"^/_matrix/client/v3/rooms/(?P<room_id>[^/]*)/state/"
            r"(?P<event_type>[^/]*)(/(?P<state_key>[^/]*))?$"
        )
    ]

    def on_GET(
        self, request: SynapseRequest, room_id: str, event_type: str, state_key: str | None
    ) -> tuple[int, Any]:
        return 200, {"room_id": room_id, "event_type": event_type, "state_key": state_key or ""}


class RoomSendServlet(RestServlet):
    # Werkzeug's rule style.
    PATTERNS = ["/_matrix/client/v3/rooms/<room_id>/send/<event_type>/<txn_id>"]

    def on_PUT(self, request: SynapseRequest, room_id: str, event_type: str, txn_id: str) -> tuple[int, Any]:
        content = parse_json_object_from_request(request)
        return 200, {"room_id": room_id, "event_type": event_type, "txn_id": txn_id, "content": content}


# -- /_demo ---------------------------------------------------------------------------


class EchoServlet(RestServlet):
    PATTERNS = ["/_demo/echo"]

    def on_POST(self, request: SynapseRequest) -> tuple[int, Any]:
        return 200, parse_json_object_from_request(request)


class ErrorServlet(RestServlet):
    PATTERNS = ["/_demo/error/<kind>"]

    def on_GET(self, request: SynapseRequest, kind: str) -> tuple[int, Any]:
        if kind == "forbidden":
            raise AuthError(HTTPStatus.FORBIDDEN, "You are not allowed to do that", Codes.FORBIDDEN)
        if kind == "ratelimit":
            raise LimitExceededError(retry_after_ms=2000)
        if kind == "notfound":
            raise NotFoundError("No such thing")
        if kind == "crash":
            raise RuntimeError("the demo crashed on purpose (this text must not reach clients)")
        raise NotFoundError(f"Unknown error kind {kind!r}")


_STREAM_ITEM = b'"' + b"x" * (64 * 1024 - 3) + b'"'


class StreamServlet(RestServlet):
    """A JSON array of at least `bytes` bytes, produced by a generator."""

    PATTERNS = ["/_demo/stream"]

    def on_GET(self, request: SynapseRequest) -> Iterator[bytes]:
        size = _bounded(request, "bytes", 1024, 8 * 1024**3)
        return self._array(size)

    @staticmethod
    def _array(size: int) -> Iterator[bytes]:
        try:
            yield b"["
            sent = 2
            separator = b""
            while sent < size:
                yield separator + _STREAM_ITEM
                sent += len(_STREAM_ITEM) + len(separator)
                separator = b","
            yield b"]"
        finally:
            STATS.incr("streams_closed")


class LargeServlet(RestServlet):
    PATTERNS = ["/_demo/large"]

    def on_GET(self, request: SynapseRequest) -> tuple[int, Any]:
        count = _bounded(request, "items", 100, 1_000_000)
        items: list[dict[str, Any]] = []
        for start in range(0, count, 1000):
            items.extend(demo_event(i) for i in range(start, min(count, start + 1000)))
            synwsgi.cooperate()  # building 10^5 dicts would hold a gevent worker for a second
        return 200, {"items": items}


def demo_event(i: int) -> dict[str, Any]:
    return {
        "type": "m.room.message",
        "room_id": "!demo:example.org",
        "event_id": f"$event{i}:example.org",
        "sender": f"@user{i % 50}:example.org",
        "origin_server_ts": 1_700_000_000_000 + i,
        "content": {"msgtype": "m.text", "body": f"message number {i} ☃"},
        "unsigned": {"age": i},
    }


class SlowServlet(RestServlet):
    PATTERNS = ["/_demo/slow"]

    @cancellable
    def on_GET(self, request: SynapseRequest) -> tuple[int, Any]:
        return _sleep_and_count(request)


class SlowUncancellableServlet(RestServlet):
    PATTERNS = ["/_demo/slow-uncancellable"]

    def on_GET(self, request: SynapseRequest) -> tuple[int, Any]:
        return _sleep_and_count(request)


def _sleep_and_count(request: SynapseRequest) -> tuple[int, Any]:
    seconds = float(_bounded(request, "seconds", 1, 60, parse=_parse_seconds))
    try:
        synwsgi.sleep(seconds)
    except synwsgi.CancelledError:
        STATS.incr("cancelled")
        raise
    STATS.incr("completed")
    return 200, {"slept": seconds}


class StatsServlet(RestServlet):
    PATTERNS = ["/_demo/stats"]

    def on_GET(self, request: SynapseRequest) -> tuple[int, Any]:
        return 200, dict(STATS.counts)


def _parse_seconds(request: SynapseRequest, name: str) -> float | None:
    text = parse_string(request, name)
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        raise SynapseError(400, f"Query parameter {name!r} must be a number", Codes.INVALID_PARAM) from None


def _bounded(
    request: SynapseRequest, name: str, default: float, maximum: float, parse: Any = parse_integer
) -> Any:
    value = parse(request, name)
    if value is None:
        return default
    if not 0 <= value <= maximum:
        raise SynapseError(
            400, f"Query parameter {name!r} must be between 0 and {maximum}", Codes.INVALID_PARAM
        )
    return value


# -- HTML -----------------------------------------------------------------------------

HELLO_TEMPLATE = jinja2.Environment(autoescape=True).from_string(
    "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8><title>Hello</title></head>"
    "<body><p>Hello, {{ name }}!</p></body></html>\n"
)


class HelloResource(DirectServeHtmlResource):
    def on_GET(self, request: SynapseRequest) -> str:
        return HELLO_TEMPLATE.render(name=request.query_args.get("name", "world"))


class HtmlErrorResource(DirectServeHtmlResource):
    def on_GET(self, request: SynapseRequest) -> str:
        raise SynapseError(418, "I'm a teapot: <script>alert('no')</script>")


class RedirectResource(DirectServeHtmlResource):
    def on_GET(self, request: SynapseRequest) -> str:
        exc = RedirectException("/_matrix/static/")
        exc.cookies.append("session=demo; Path=/; HttpOnly")
        raise exc


# The metrics of every site built here (in the default registry). They are not
# served on this site's port: gunicorn.conf.py serves them on a listener of
# their own (SYNWSGI_METRICS_BIND, 127.0.0.1:9101 by default), and so does
# `python wsgi.py`.
METRICS = ServerMetrics()


def build_site(config: ServerConfig | None = None) -> Site:
    config = config or ServerConfig(behind_proxy=os.environ.get("SYNWSGI_BEHIND_PROXY") == "1")
    client = JsonResource()
    client_servlets: list[RestServlet] = [VersionsServlet(), RoomStateServlet(), RoomSendServlet()]
    for servlet in client_servlets:
        servlet.register(client)
    demo = JsonResource()
    demo_servlets: list[RestServlet] = [
        EchoServlet(),
        ErrorServlet(),
        StreamServlet(),
        LargeServlet(),
        SlowServlet(),
        SlowUncancellableServlet(),
        StatsServlet(),
    ]
    for servlet in demo_servlets:
        servlet.register(demo)
    return Site(
        {
            "/": RootOptionsRedirectResource("/_matrix/static/"),
            "/_matrix/static": StaticResource(WEBROOT),
            "/_matrix/client": client,
            "/_demo": demo,
            "/_demo/hello": HelloResource(),
            "/_demo/html-error": HtmlErrorResource(),
            "/_demo/redirect": RedirectResource(),
        },
        config,
        hooks=[AccessLogger(config.site_tag), METRICS, *tracing_hooks()],
    )


application = app = build_site()


if __name__ == "__main__":
    import logging.config

    from synwsgi.devserver import run_dev_server
    from synwsgi.observability.logcontext import logging_config

    logging.config.dictConfig(logging_config())
    metrics_bind = os.environ.get("SYNWSGI_METRICS_BIND", "127.0.0.1:9101")
    if metrics_bind:
        logging.getLogger("wsgi").info(
            "Serving metrics at http://%s:%s/metrics", *start_metrics_server(metrics_bind)
        )
    run_dev_server(app, "127.0.0.1", 8008)
