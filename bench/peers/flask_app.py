"""Flask 3 implementation of the benchmark routes."""

from __future__ import annotations

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

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

app = Flask(__name__)


def _json(status: int, body: bytes) -> Response:
    return Response(body, status=status, headers=list(JSON_HEADERS))


@app.get(STATE_RULE)
def state(room_id: str, event_type: str) -> Response:
    return _json(200, state_body(room_id, event_type))


@app.get(STREAM_PATH)
def stream() -> Response:
    total, chunk = stream_params(request.query_string.decode("latin-1"))
    return Response(stream_chunks(total, chunk), headers=list(STREAM_HEADERS))


@app.get(LARGE_PATH)
def large() -> Response:
    items = max(0, request.args.get("items", 0, type=int))
    return _json(200, large_body(items))


@app.errorhandler(404)
@app.errorhandler(405)
def not_found(_: HTTPException) -> Response:
    return _json(404, NOT_FOUND_BODY)
