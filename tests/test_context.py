"""Behaviour 10: a fresh `contextvars.Context` per request; request ids; `current_request`."""

from __future__ import annotations

import contextvars
import re
from collections.abc import Iterator
from typing import Any

from _helpers import assert_json_response, json_client
from werkzeug.test import Client

from synwsgi import ServerConfig, SynapseRequest, current_request

marker: contextvars.ContextVar[str] = contextvars.ContextVar("test_marker", default="unset")
counter: contextvars.ContextVar[int] = contextvars.ContextVar("test_counter", default=0)


def make_client(config: ServerConfig | None = None) -> Client:
    def set_marker(request: SynapseRequest, value: str) -> tuple[int, Any]:
        before = marker.get()
        marker.set(value)
        counter.set(counter.get() + 1)
        return 200, {"before": before, "counter": counter.get()}

    def get_marker(request: SynapseRequest) -> tuple[int, Any]:
        return 200, {"marker": marker.get(), "counter": counter.get()}

    def stream_marker(request: SynapseRequest, value: str) -> Iterator[bytes]:
        marker.set(value)

        def body() -> Iterator[bytes]:
            yield b'{"in_body":"' + marker.get().encode() + b'"'
            yield b',"later":"' + marker.get().encode() + b'"'
            marker.set("set-inside-body")
            yield b"}"

        return body()

    def request_id(request: SynapseRequest) -> tuple[int, Any]:
        current = current_request()
        return 200, {"id": request.request_id, "current_is_request": current is request}

    return json_client(
        ("GET", ["/set/<value>"], set_marker, "Set"),
        ("GET", ["/get"], get_marker, "Get"),
        ("GET", ["/stream/<value>"], stream_marker, "Stream"),
        ("GET", ["/id"], request_id, "Id"),
        ("POST", ["/id"], request_id, "Id"),
        ("PUT", ["/id"], request_id, "Id"),
        config=config,
    )


def test_contextvar_set_by_one_request_is_not_seen_by_the_next() -> None:
    client = make_client()
    assert assert_json_response(client.get("/set/leaked"), 200) == {"before": "unset", "counter": 1}
    assert assert_json_response(client.get("/get"), 200) == {"marker": "unset", "counter": 0}
    assert assert_json_response(client.get("/set/again"), 200) == {"before": "unset", "counter": 1}


def test_requests_do_not_see_the_callers_context() -> None:
    client = make_client()
    token = marker.set("from-the-test")
    try:
        assert client.get("/get").get_json() == {"marker": "unset", "counter": 0}
        client.get("/set/changed")
        assert marker.get() == "from-the-test"
    finally:
        marker.reset(token)


# Each piece of a streamed body is its own chunk, pulled outside the handler's call.
ONE_BYTE_CHUNKS = ServerConfig(min_chunk_size=1)


def test_streamed_body_runs_in_its_request_context_and_does_not_leak() -> None:
    client = make_client(ONE_BYTE_CHUNKS)
    response = client.get("/stream/handler-value", buffered=True)
    assert response.get_json() == {"in_body": "handler-value", "later": "handler-value"}
    assert marker.get() == "unset"
    assert client.get("/get").get_json() == {"marker": "unset", "counter": 0}


def test_interleaved_streams_keep_their_own_context() -> None:
    client = make_client(ONE_BYTE_CHUNKS)
    first = client.open("/stream/one", buffered=False)
    second = client.open("/stream/two", buffered=False)
    try:
        assert second.get_data() == b'{"in_body":"two","later":"two"}'
        assert first.get_data() == b'{"in_body":"one","later":"one"}'
    finally:
        first.close()
        second.close()
    assert client.get("/get").get_json()["marker"] == "unset"


def test_request_ids_are_method_worker_tag_and_increasing_number() -> None:
    client = make_client()
    numbers: list[int] = []
    for method in ("GET", "POST", "GET", "PUT", "GET"):
        body = assert_json_response(client.open("/id", method=method), 200)
        match = re.fullmatch(rf"{method}-[a-z2-7]{{5}}-(\d+)", body["id"])
        assert match is not None, body
        assert body["current_is_request"] is True
        numbers.append(int(match.group(1)))
    assert numbers == sorted(numbers)
    assert len(set(numbers)) == len(numbers)


def test_no_current_request_outside_a_request() -> None:
    client = make_client()
    client.get("/id")
    assert current_request() is None
