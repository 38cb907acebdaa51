"""Idiomatic Werkzeug: ``Map.bind_to_environ`` + ``Request`` + ``Response``."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from bench.peers.common import (
    JSON_HEADERS,
    LARGE_PATH,
    NOT_FOUND_BODY,
    STATE_RULE,
    STREAM_HEADERS,
    STREAM_PATH,
    large_body,
    state_body,
    stream_chunks,
    stream_params,
)

StartResponse = Any


def _json(status: int, body: bytes) -> Response:
    return Response(body, status=status, headers=list(JSON_HEADERS))


def state(request: Request, room_id: str, event_type: str) -> Response:
    return _json(200, state_body(room_id, event_type))


def stream(request: Request) -> Response:
    total, chunk = stream_params(request.query_string.decode("latin-1"))
    return Response(stream_chunks(total, chunk), headers=list(STREAM_HEADERS))


def large(request: Request) -> Response:
    items = max(0, request.args.get("items", 0, type=int))
    return _json(200, large_body(items))


Handler = Callable[..., Response]

URL_MAP = Map(
    [
        Rule(STATE_RULE, endpoint=state, methods=["GET"]),
        Rule(STREAM_PATH, endpoint=stream, methods=["GET"]),
        Rule(LARGE_PATH, endpoint=large, methods=["GET"]),
    ]
)


def dispatch(request: Request) -> Response:
    adapter = URL_MAP.bind_to_environ(request.environ)
    try:
        handler, args = adapter.match()
    except (NotFound, MethodNotAllowed):
        return _json(404, NOT_FOUND_BODY)
    endpoint: Handler = handler
    return endpoint(request, **args)


def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    response = dispatch(Request(environ))
    return response(environ, start_response)
