"""Raw WSGI callable with a hand-split path: the floor every peer is compared to."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from bench.peers.common import (
    LARGE_PATH,
    NOT_FOUND_BODY,
    STATE_PREFIX,
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


def _json(start_response: StartResponse, status: str, body: bytes) -> list[bytes]:
    start_response(status, json_headers(body))
    return [body]


def _state(path: str) -> bytes | None:
    """Body of the state route if ``path`` is one, else None."""
    parts = path[len(STATE_PREFIX) :].split("/")
    if len(parts) == 3 and parts[1] == "state" and parts[0] and parts[2]:
        return state_body(parts[0], parts[2])
    return None


def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    if environ["REQUEST_METHOD"] == "GET":
        path = wsgi_path(environ)
        if path.startswith(STATE_PREFIX):
            body = _state(path)
            if body is not None:
                return _json(start_response, STATUS_OK, body)
        elif path == STREAM_PATH:
            total, chunk = stream_params(environ.get("QUERY_STRING", ""))
            start_response(STATUS_OK, list(STREAM_HEADERS))
            return stream_chunks(total, chunk)
        elif path == LARGE_PATH:
            items = query_int(environ.get("QUERY_STRING", ""), "items", 0)
            return _json(start_response, STATUS_OK, large_body(items))
    return _json(start_response, STATUS_NOT_FOUND, NOT_FOUND_BODY)
