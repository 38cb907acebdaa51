"""Werkzeug ``Map`` bound once, plain ``start_response``: no Request/Response."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule

from bench.peers.common import (
    LARGE_PATH,
    NOT_FOUND_BODY,
    STATE_RULE,
    STATUS_NOT_FOUND,
    STATUS_OK,
    STREAM_HEADERS,
    STREAM_PATH,
    json_headers,
    large_body,
    query_int,
    state_body,
    stream_chunks,
    stream_params,
    wsgi_path,
)

StartResponse = Any

URL_MAP = Map(
    [
        Rule(STATE_RULE, endpoint="state", methods=["GET"]),
        Rule(STREAM_PATH, endpoint="stream", methods=["GET"]),
        Rule(LARGE_PATH, endpoint="large", methods=["GET"]),
    ]
)
ADAPTER = URL_MAP.bind("localhost")


def _json(start_response: StartResponse, status: str, body: bytes) -> list[bytes]:
    start_response(status, json_headers(body))
    return [body]


def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    try:
        endpoint, args = ADAPTER.match(wsgi_path(environ), environ["REQUEST_METHOD"])
    except (NotFound, MethodNotAllowed):
        return _json(start_response, STATUS_NOT_FOUND, NOT_FOUND_BODY)
    query = environ.get("QUERY_STRING", "")
    if endpoint == "state":
        body = state_body(args["room_id"], args["event_type"])
        return _json(start_response, STATUS_OK, body)
    if endpoint == "stream":
        total, chunk = stream_params(query)
        start_response(STATUS_OK, list(STREAM_HEADERS))
        return stream_chunks(total, chunk)
    return _json(start_response, STATUS_OK, large_body(query_int(query, "items", 0)))
