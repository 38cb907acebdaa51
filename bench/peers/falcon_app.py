"""Falcon 4 implementation of the benchmark routes."""

from __future__ import annotations

import falcon

from bench.peers.common import (
    JSON_HEADERS,
    LARGE_PATH,
    NOT_FOUND_BODY,
    STREAM_HEADERS,
    STREAM_PATH,
    large_body,
    state_body,
    stream_chunks,
    stream_params,
)


def _json(resp: falcon.Response, status: int, body: bytes) -> None:
    resp.status = status
    resp.set_headers(JSON_HEADERS)
    resp.data = body


class StateResource:
    def on_get(self, req: falcon.Request, resp: falcon.Response, room_id: str, event_type: str) -> None:
        _json(resp, 200, state_body(room_id, event_type))


class StreamResource:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        total, chunk = stream_params(req.query_string)
        resp.set_headers(STREAM_HEADERS)
        resp.stream = stream_chunks(total, chunk)


class LargeResource:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        items = req.get_param_as_int("items", min_value=0, default=0)
        _json(resp, 200, large_body(items))


def not_found(req: falcon.Request, resp: falcon.Response, **_: str) -> None:
    _json(resp, 404, NOT_FOUND_BODY)


def create_app() -> falcon.App[falcon.Request, falcon.Response]:
    application = falcon.App()
    application.add_route("/_matrix/client/v3/rooms/{room_id}/state/{event_type}", StateResource())
    application.add_route(STREAM_PATH, StreamResource())
    application.add_route(LARGE_PATH, LargeResource())
    # Sinks are consulted only when no route matched.
    application.add_sink(not_found, prefix="/")
    return application


app = create_app()
