"""Bottle 0.13 implementation of the benchmark routes."""

from __future__ import annotations

from collections.abc import Iterator

import bottle  # type: ignore[import-untyped]

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

app = bottle.Bottle(catchall=True, autojson=False)


def _json(status: int, body: bytes) -> bottle.HTTPResponse:
    return bottle.HTTPResponse(body, status, headers=dict(JSON_HEADERS))


def state(room_id: str, event_type: str) -> bottle.HTTPResponse:
    return _json(200, state_body(room_id, event_type))


def stream() -> Iterator[bytes]:
    total, chunk = stream_params(bottle.request.query_string)
    for name, value in STREAM_HEADERS:
        bottle.response.set_header(name, value)
    return stream_chunks(total, chunk)


def large() -> bottle.HTTPResponse:
    items = max(0, int(bottle.request.query.get("items", "0")))
    return _json(200, large_body(items))


def not_found(path: str = "") -> bottle.HTTPResponse:
    return _json(404, NOT_FOUND_BODY)


app.route(STATE_RULE, "GET", state)
app.route(STREAM_PATH, "GET", stream)
app.route(LARGE_PATH, "GET", large)
# Registered last, so it only catches what no other route matched.
app.route(["/", "/<path:path>"], "ANY", not_found)
