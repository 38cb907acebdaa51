"""Behaviour 7: streamed bodies, chunk sizes, `close()` and aborts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import canonicaljson
import pytest
from _helpers import (
    INTERNAL_ERROR_BODY,
    assert_json_response,
    error_records,
    json_client,
    json_resource,
    make_client,
)
from werkzeug.test import Client, TestResponse

import synwsgi
from synwsgi import DirectServeJsonResource, ServerConfig, Site, SynapseRequest
from synwsgi.observability.accesslog import AccessLogger

MIN = 10
MAX = 25
SMALL_CHUNKS = ServerConfig(min_chunk_size=MIN, max_chunk_size=MAX)


class Tracker:
    """Records what happened to a generator body."""

    def __init__(self) -> None:
        self.closed = 0
        self.pulled = 0
        self.exited_with: str | None = None

    def body(self, pieces: list[bytes], fail_after: int | None = None) -> Iterator[bytes]:
        try:
            for i, piece in enumerate(pieces):
                if fail_after is not None and i == fail_after:
                    raise ValueError("body exploded half-way (secret detail)")
                self.pulled += 1
                yield piece
            self.exited_with = "end"
        except GeneratorExit:
            self.exited_with = "GeneratorExit"
            raise
        finally:
            self.closed += 1


class ClosableIterable:
    """A non-generator iterable with a `close()`, as PEP 3333 allows."""

    def __init__(self, pieces: list[bytes]) -> None:
        self._pieces = iter(pieces)
        self.close_calls = 0

    def __iter__(self) -> ClosableIterable:
        return self

    def __next__(self) -> bytes:
        return next(self._pieces)

    def close(self) -> None:
        self.close_calls += 1


def streaming_client(make_body: Any, config: ServerConfig | None = SMALL_CHUNKS) -> Client:
    def callback(request: SynapseRequest) -> Any:
        return make_body()

    return json_client(("GET", ["/s"], callback, "Streamer"), config=config)


def pieces_of(response: TestResponse) -> list[bytes]:
    try:
        return list(response.iter_encoded())
    finally:
        response.close()


def test_small_pieces_are_coalesced_to_the_minimum() -> None:
    tracker = Tracker()
    pieces = [b"abc"] * 10
    client = streaming_client(lambda: tracker.body(pieces))
    response = client.open("/s", buffered=False)
    assert response.status_code == 200
    assert "Content-Length" not in response.headers
    got = pieces_of(response)
    assert b"".join(got) == b"abc" * 10
    assert all(len(p) >= MIN for p in got[:-1]), [len(p) for p in got]
    assert all(0 < len(p) <= MAX for p in got), [len(p) for p in got]
    assert len(got) < len(pieces)
    assert tracker.closed == 1


def test_big_pieces_are_split_at_the_maximum() -> None:
    data = bytes(range(256)) * 2
    client = streaming_client(lambda: iter([data]))
    got = pieces_of(client.open("/s", buffered=False))
    assert b"".join(got) == data
    assert all(len(p) <= MAX for p in got), [len(p) for p in got]
    assert all(len(p) >= MIN for p in got[:-1])
    assert len(got) >= len(data) // MAX


def test_mixed_pieces_respect_both_bounds() -> None:
    sizes = [1, 2, 40, 3, 9, 10, 26, 25, 0, 7, 100, 1]
    pieces = [bytes([65 + i % 26]) * n for i, n in enumerate(sizes)]
    client = streaming_client(lambda: iter(pieces))
    got = pieces_of(client.open("/s", buffered=False))
    assert b"".join(got) == b"".join(pieces)
    assert all(0 < len(p) <= MAX for p in got), [len(p) for p in got]
    assert all(len(p) >= MIN for p in got[:-1]), [len(p) for p in got]


def test_default_chunk_sizes_coalesce_tiny_pieces() -> None:
    pieces = [b"x"] * 5000
    client = streaming_client(lambda: iter(pieces), config=None)
    got = pieces_of(client.open("/s", buffered=False))
    assert b"".join(got) == b"x" * 5000
    assert len(got) == 1


def test_big_json_bytes_body_is_split_at_the_maximum_and_keeps_content_length() -> None:
    obj = {"text": "a" * 200, "list": list(range(20))}
    expected = canonicaljson.encode_canonical_json(obj)

    def callback(request: SynapseRequest) -> tuple[int, Any]:
        return 200, obj

    client = json_client(("GET", ["/big"], callback, "Big"), config=SMALL_CHUNKS)
    response = client.open("/big", buffered=False)
    assert response.headers["Content-Length"] == str(len(expected))
    got = pieces_of(response)
    assert b"".join(got) == expected
    assert all(len(p) <= MAX for p in got), [len(p) for p in got]
    assert len(got) > 1


def test_streamed_body_buffered_matches() -> None:
    client = streaming_client(lambda: iter([b'{"a":', b"[1,2]", b"}"]))
    response = client.get("/s")
    assert response.status_code == 200
    assert response.get_json() == {"a": [1, 2]}


def test_empty_generator_gives_empty_body() -> None:
    tracker = Tracker()
    client = streaming_client(lambda: tracker.body([]))
    response = client.get("/s")
    assert response.status_code == 200
    assert response.data == b""
    assert tracker.closed == 1


# -- close() ----------------------------------------------------------------------------------


def test_close_called_when_fully_consumed() -> None:
    tracker = Tracker()
    client = streaming_client(lambda: tracker.body([b"a" * 30, b"b" * 30]))
    response = client.get("/s", buffered=True)
    assert response.data == b"a" * 30 + b"b" * 30
    assert tracker.closed == 1
    assert tracker.exited_with == "end"


def test_close_called_when_client_stops_early() -> None:
    tracker = Tracker()
    client = streaming_client(lambda: tracker.body([b"a" * MAX] * 100))
    response = client.open("/s", buffered=False)
    iterator = response.iter_encoded()
    assert next(iterator) == b"a" * MAX
    assert tracker.closed == 0
    response.close()
    assert tracker.closed == 1
    assert tracker.exited_with == "GeneratorExit"
    assert tracker.pulled < 100


def test_close_called_on_head() -> None:
    bodies: list[ClosableIterable] = []

    def make() -> ClosableIterable:
        bodies.append(ClosableIterable([b"a" * 30]))
        return bodies[-1]

    client = streaming_client(make)
    response = client.head("/s", buffered=True)
    assert response.status_code == 200
    assert response.data == b""
    assert bodies[0].close_calls == 1


def test_close_of_a_plain_iterable_is_called_exactly_once() -> None:
    bodies: list[ClosableIterable] = []

    def make() -> ClosableIterable:
        body = ClosableIterable([b"p" * 30, b"q" * 30])
        bodies.append(body)
        return body

    client = streaming_client(make)
    response = client.get("/s", buffered=True)
    assert response.data == b"p" * 30 + b"q" * 30
    assert bodies[0].close_calls == 1

    response = client.open("/s", buffered=False)
    assert bodies[1].close_calls == 0
    response.close()
    assert bodies[1].close_calls == 1

    response = client.open("/s", buffered=False)
    assert response.data == b"p" * 30 + b"q" * 30
    response.close()
    response.close()
    assert bodies[2].close_calls == 1


def test_close_called_when_failing_before_first_byte(request_log: pytest.LogCaptureFixture) -> None:
    tracker = Tracker()
    client = streaming_client(lambda: tracker.body([b"never"], fail_after=0))
    response = client.get("/s", buffered=True)
    assert response.data == INTERNAL_ERROR_BODY
    assert_json_response(response, 500)
    assert tracker.closed == 1
    errors = error_records(request_log)
    assert len(errors) == 1
    assert "Streamer" in errors[0].getMessage()
    assert errors[0].exc_info is not None and errors[0].exc_info[0] is ValueError


# -- failures after the first byte ------------------------------------------------------------


def test_failure_mid_stream_aborts_the_connection(request_log: pytest.LogCaptureFixture) -> None:
    tracker = Tracker()
    client = streaming_client(lambda: tracker.body([b"[" + b"1," * 20, b"2," * 20, b"3]"], fail_after=2))
    response = client.open("/s", buffered=False)
    assert response.status_code == 200
    iterator = response.iter_encoded()
    received = b""
    with pytest.raises(synwsgi.ResponseAborted) as info:
        for piece in iterator:
            received += piece
    assert isinstance(info.value, BrokenPipeError)
    response.close()
    assert received  # the first bytes went out before the failure
    with pytest.raises(json.JSONDecodeError):
        json.loads(received)  # truncated, not a clean-looking body
    assert tracker.closed == 1
    errors = error_records(request_log)
    assert len(errors) == 1, [r.getMessage() for r in errors]
    assert errors[0].exc_info is not None
    assert "secret detail" in request_log.text


def test_failure_mid_stream_raises_to_a_buffering_server(request_log: pytest.LogCaptureFixture) -> None:
    tracker = Tracker()
    client = streaming_client(lambda: tracker.body([b"a" * 30, b"b" * 30, b"c"], fail_after=1))
    with pytest.raises(synwsgi.ResponseAborted):
        client.get("/s", buffered=True)
    assert tracker.closed == 1
    assert len(error_records(request_log)) == 1


def test_failure_mid_stream_of_a_direct_serve_resource(request_log: pytest.LogCaptureFixture) -> None:
    tracker = Tracker()

    class Res(DirectServeJsonResource):
        def on_GET(self, request: SynapseRequest) -> Iterator[bytes]:
            return tracker.body([b"x" * 30, b"y" * 30], fail_after=1)

    client = make_client({"/r": Res()}, SMALL_CHUNKS)
    response = client.open("/r", buffered=False)
    with pytest.raises(BrokenPipeError):
        list(response.iter_encoded())
    response.close()
    assert tracker.closed == 1
    assert len(error_records(request_log)) == 1


def test_failure_mid_stream_is_logged_once_with_access_log(request_log: pytest.LogCaptureFixture) -> None:
    request_log.set_level("DEBUG")
    tracker = Tracker()

    def callback(request: SynapseRequest) -> Iterator[bytes]:
        return tracker.body([b"x" * 30, b"y" * 30], fail_after=1)

    resource = json_resource(("GET", ["/s"], callback, "Streamer"))
    client = Client(Site({"/": resource}, SMALL_CHUNKS, hooks=[AccessLogger("test")]))
    response = client.open("/s", buffered=False)
    with pytest.raises(synwsgi.ResponseAborted):
        list(response.iter_encoded())
    response.close()
    assert tracker.closed == 1
    assert len(error_records(request_log)) == 1
    assert sum(record.exc_info is not None for record in request_log.records) == 1  # one traceback


def test_response_aborted_is_a_broken_pipe() -> None:
    assert issubclass(synwsgi.ResponseAborted, BrokenPipeError)
