"""Behaviour 9: request bodies, body size limits and query parameters."""

from __future__ import annotations

import io
from typing import Any

import pytest
from _helpers import assert_json_error, assert_json_response, json_client
from werkzeug.test import Client

from synwsgi import (
    ServerConfig,
    SynapseRequest,
    parse_boolean,
    parse_integer,
    parse_json_object_from_request,
    parse_json_value_from_request,
    parse_string,
)

LIMIT = 100
NOT_JSON = ("M_NOT_JSON", "Content not JSON.")
BAD_JSON = ("M_BAD_JSON", "Content must be a JSON object.")


class Calls:
    def __init__(self) -> None:
        self.count = 0


@pytest.fixture
def calls() -> Calls:
    return Calls()


@pytest.fixture
def client(calls: Calls) -> Client:
    def obj(request: SynapseRequest) -> tuple[int, Any]:
        calls.count += 1
        return 200, {"got": parse_json_object_from_request(request)}

    def obj_or_empty(request: SynapseRequest) -> tuple[int, Any]:
        return 200, {"got": parse_json_object_from_request(request, allow_empty_body=True)}

    def value(request: SynapseRequest) -> tuple[int, Any]:
        return 200, {"got": parse_json_value_from_request(request)}

    def value_or_empty(request: SynapseRequest) -> tuple[int, Any]:
        return 200, {"got": parse_json_value_from_request(request, allow_empty_body=True)}

    def ignores_body(request: SynapseRequest) -> tuple[int, Any]:
        calls.count += 1
        return 200, {}

    return json_client(
        ("POST", ["/obj"], obj, "Obj"),
        ("PUT", ["/obj"], obj, "Obj"),
        ("POST", ["/obj-or-empty"], obj_or_empty, "ObjOrEmpty"),
        ("POST", ["/value"], value, "Value"),
        ("POST", ["/value-or-empty"], value_or_empty, "ValueOrEmpty"),
        ("POST", ["/ignores"], ignores_body, "Ignores"),
        config=ServerConfig(max_request_body_size=LIMIT),
    )


# -- JSON bodies ----------------------------------------------------------------------------


def test_object_body(client: Client) -> None:
    response = client.post("/obj", data=b'{"a": [1, 2.5, "\\u2603"], "b": {"c": null}}')
    assert assert_json_response(response, 200) == {"got": {"a": [1, 2.5, "\u2603"], "b": {"c": None}}}


def test_utf8_body(client: Client) -> None:
    response = client.put("/obj", data='{"snow": "\u2603"}'.encode())
    assert assert_json_response(response, 200) == {"got": {"snow": "\u2603"}}


def test_big_integers_stay_exact(client: Client) -> None:
    response = client.post("/obj", data=b'{"n": 123456789012345678901234567890}')
    assert response.status_code == 200
    assert b"123456789012345678901234567890" in response.data


def test_empty_body_is_not_json(client: Client) -> None:
    assert_json_error(client.post("/obj", data=b""), 400, *NOT_JSON)
    assert_json_error(client.post("/value", data=b""), 400, *NOT_JSON)


def test_empty_body_allowed(client: Client) -> None:
    assert assert_json_response(client.post("/obj-or-empty", data=b""), 200) == {"got": {}}
    assert assert_json_response(client.post("/value-or-empty", data=b""), 200) == {"got": None}
    assert assert_json_response(client.post("/obj-or-empty", data=b'{"x":1}'), 200) == {"got": {"x": 1}}


@pytest.mark.parametrize(
    "data",
    [
        b'{"a": "\xff"}',
        b"\xff\xfe{}",
        b'{"a": "\xc3"}',
        b"{",
        b'{"a": 1,}',
        b"{'a': 1}",
        b"not json",
        b'{"a": 1} trailing',
        b'{"a": NaN}',
        b'{"a": Infinity}',
        b'{"a": -Infinity}',
        b"[NaN]",
        b"NaN",
        b" ",
    ],
)
def test_invalid_bodies_are_not_json(client: Client, data: bytes) -> None:
    assert_json_error(client.post("/obj", data=data), 400, *NOT_JSON)
    assert_json_error(client.post("/value", data=data), 400, *NOT_JSON)


@pytest.mark.parametrize("data", [b"[1, 2]", b'"string"', b"12", b"1.5", b"null", b"true", b"false", b"[]"])
def test_non_object_where_object_required(client: Client, data: bytes) -> None:
    assert_json_error(client.post("/obj", data=data), 400, *BAD_JSON)


@pytest.mark.parametrize(
    ("data", "expected"),
    [(b"[1, 2]", [1, 2]), (b'"string"', "string"), (b"12", 12), (b"null", None), (b"true", True)],
)
def test_any_value_where_value_accepted(client: Client, data: bytes, expected: Any) -> None:
    assert assert_json_response(client.post("/value", data=data), 200) == {"got": expected}


# -- body size -------------------------------------------------------------------------------


class ExplodingStream(io.RawIOBase):
    """A request body that must never be read."""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        raise AssertionError("the body was read")


class CountingStream(io.RawIOBase):
    """`{}` then spaces, `size` bytes in all, counting what was read from it.

    Any prefix of it that is at least two bytes long is valid JSON, so a body
    silently cut at the limit would be accepted.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.read_bytes = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = min(len(buffer), self.size - self.read_bytes)
        data = (b"{}" + b" " * (self.size - 2))[self.read_bytes : self.read_bytes + n]
        buffer[:n] = data
        self.read_bytes += n
        return n


TOO_LARGE = ("M_TOO_LARGE", f"Request content is too large (>{LIMIT})")


def test_declared_content_length_over_limit_is_413_without_reading(client: Client, calls: Calls) -> None:
    for path in ("/obj", "/ignores", "/unknown"):
        response = client.post(
            path,
            input_stream=io.BytesIO(b""),
            environ_overrides={"CONTENT_LENGTH": str(LIMIT + 1), "wsgi.input": ExplodingStream()},
        )
        assert_json_error(response, 413, *TOO_LARGE)
    assert calls.count == 0


def test_declared_content_length_far_over_limit(client: Client) -> None:
    response = client.post("/obj", data=b"{" + b" " * (10 * LIMIT) + b"}")
    assert_json_error(response, 413, *TOO_LARGE)


def test_default_limit_is_50_mib() -> None:
    assert ServerConfig().max_request_body_size == 50 * 1024 * 1024

    def handler(request: SynapseRequest) -> tuple[int, Any]:
        return 200, {}

    client = json_client(("POST", ["/x"], handler, "X"))
    response = client.post(
        "/x",
        input_stream=io.BytesIO(b""),
        environ_overrides={"CONTENT_LENGTH": str(50 * 1024 * 1024 + 1), "wsgi.input": ExplodingStream()},
    )
    assert_json_error(response, 413, "M_TOO_LARGE", "Request content is too large (>52428800)")


def test_body_at_the_limit_is_accepted(client: Client) -> None:
    body = b'{"a":"' + b"x" * (LIMIT - 8) + b'"}'
    assert len(body) == LIMIT
    assert client.post("/obj", data=body).status_code == 200


def test_body_at_the_limit_is_not_read_past_content_length(client: Client) -> None:
    # PEP 3333: an application must not read beyond CONTENT_LENGTH. Some servers
    # (the Werkzeug dev server) hand over the connection itself, where the
    # next request on a keep-alive connection follows the body.
    body = b'{"a":"' + b"x" * (LIMIT - 8) + b'"}'
    stream = io.BytesIO(body + b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n")
    response = client.post(
        "/obj",
        input_stream=io.BytesIO(b""),
        environ_overrides={"CONTENT_LENGTH": str(len(body)), "wsgi.input": stream},
    )
    assert assert_json_response(response, 200) == {"got": {"a": "x" * (LIMIT - 8)}}
    assert stream.tell() == len(body)


def test_body_under_the_limit_is_not_read_past_content_length(client: Client) -> None:
    body = b'{"a":1}'
    stream = io.BytesIO(body + b"GET /next HTTP/1.1\r\n\r\n")
    response = client.post(
        "/obj",
        input_stream=io.BytesIO(b""),
        environ_overrides={"CONTENT_LENGTH": str(len(body)), "wsgi.input": stream},
    )
    assert assert_json_response(response, 200) == {"got": {"a": 1}}
    assert stream.tell() == len(body)


def chunked(stream: Any) -> dict[str, Any]:
    """environ overrides for a body of unknown length the server terminates (chunked)."""
    return {"CONTENT_LENGTH": "", "wsgi.input_terminated": True, "wsgi.input": stream}


def test_chunked_body_within_limit(client: Client) -> None:
    body = b'{"chunked": true}'
    response = client.post(
        "/obj",
        input_stream=io.BytesIO(body),
        headers={"Transfer-Encoding": "chunked"},
        environ_overrides=chunked(io.BytesIO(body)),
    )
    assert assert_json_response(response, 200) == {"got": {"chunked": True}}


def test_chunked_body_exactly_at_limit(client: Client) -> None:
    body = b'{"a":"' + b"x" * (LIMIT - 8) + b'"}'
    assert len(body) == LIMIT
    response = client.post("/obj", input_stream=io.BytesIO(b""), environ_overrides=chunked(io.BytesIO(body)))
    assert assert_json_response(response, 200) == {"got": {"a": "x" * (LIMIT - 8)}}


@pytest.mark.parametrize("size", [LIMIT + 1, 2 * LIMIT, 1_000_000])
def test_chunked_body_over_limit_is_413(client: Client, size: int) -> None:
    stream = CountingStream(size)
    response = client.post(
        "/obj",
        input_stream=io.BytesIO(b""),
        headers={"Transfer-Encoding": "chunked"},
        environ_overrides=chunked(stream),
    )
    assert_json_error(response, 413, *TOO_LARGE)
    # Stopped as soon as the limit was passed, not after reading everything.
    assert stream.read_bytes <= LIMIT + 64 * 1024


@pytest.mark.parametrize("value", ["abc", "-1", "1.5", "0x10", "5, 5", " "])
def test_non_numeric_content_length_is_400(client: Client, calls: Calls, value: str) -> None:
    response = client.post("/ignores", data=b"{}", environ_overrides={"CONTENT_LENGTH": value})
    body = assert_json_response(response, 400)
    assert body["errcode"].startswith("M_")
    assert calls.count == 0


# -- query parameters --------------------------------------------------------------------------


@pytest.fixture
def query_client() -> Client:
    def integer(request: SynapseRequest) -> tuple[int, Any]:
        return 200, {
            "limit": parse_integer(request, "limit", default=10),
            "required": parse_integer(request, "required", required=True),
            "signed": parse_integer(request, "signed", negative=True),
        }

    def boolean(request: SynapseRequest) -> tuple[int, Any]:
        return 200, {
            "flag": parse_boolean(request, "flag", default=False),
            "must": parse_boolean(request, "must", required=True),
        }

    def string(request: SynapseRequest) -> tuple[int, Any]:
        return 200, {
            "dir": parse_string(request, "dir", default="f", allowed_values=["f", "b"]),
            "from": parse_string(request, "from", required=True, encoding="utf-8"),
        }

    return json_client(
        ("GET", ["/int"], integer, "Int"),
        ("GET", ["/bool"], boolean, "Bool"),
        ("GET", ["/str"], string, "Str"),
    )


def test_parse_integer(query_client: Client) -> None:
    assert assert_json_response(query_client.get("/int?required=5"), 200) == {
        "limit": 10,
        "required": 5,
        "signed": None,
    }
    assert assert_json_response(query_client.get("/int?required=0&limit=3&signed=-7"), 200) == {
        "limit": 3,
        "required": 0,
        "signed": -7,
    }


def test_parse_integer_missing(query_client: Client) -> None:
    body = assert_json_error(query_client.get("/int"), 400, "M_MISSING_PARAM")
    assert "required" in body["error"]


@pytest.mark.parametrize(
    "query",
    ["required=abc", "required=1.5", "required=", "required=-1", "required=1&limit=-3", "required=%E2%91%A0",
     "required=1&limit=x"],
)
def test_parse_integer_invalid(query_client: Client, query: str) -> None:
    assert_json_error(query_client.get(f"/int?{query}"), 400, "M_INVALID_PARAM")


def test_parse_boolean(query_client: Client) -> None:
    assert assert_json_response(query_client.get("/bool?must=true"), 200) == {"flag": False, "must": True}
    assert assert_json_response(query_client.get("/bool?must=false&flag=true"), 200) == {
        "flag": True,
        "must": False,
    }
    assert_json_error(query_client.get("/bool"), 400, "M_MISSING_PARAM")
    for bad in ("yes", "1", "True", ""):
        assert_json_error(query_client.get(f"/bool?must={bad}"), 400, "M_INVALID_PARAM")


def test_parse_string(query_client: Client) -> None:
    assert assert_json_response(query_client.get("/str?from=%E2%98%83%2F"), 200) == {
        "dir": "f",
        "from": "\u2603/",
    }
    assert assert_json_response(query_client.get("/str?from=x&dir=b"), 200) == {"dir": "b", "from": "x"}
    assert_json_error(query_client.get("/str"), 400, "M_MISSING_PARAM")
    assert_json_error(query_client.get("/str?from=x&dir=sideways"), 400, "M_INVALID_PARAM")
