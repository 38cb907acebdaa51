"""Behaviours 3 and 6: what callbacks may return, and the headers of JSON responses."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import canonicaljson
import pytest
from _helpers import (
    ANTI_FRAMING_HEADERS,
    CORS_HEADERS,
    CORS_HEADERS_MSC3886,
    NO_CACHE,
    assert_cors,
    assert_header_once,
    assert_headers_unique,
    assert_json_error,
    assert_json_response,
    assert_no_cors,
    json_client,
    make_client,
)
from werkzeug.wrappers import Response as WerkzeugResponse

from synwsgi import (
    Codes,
    DirectServeJsonResource,
    JsonResource,
    RestServlet,
    ServerConfig,
    SynapseError,
    SynapseRequest,
    finish_request,
    html_response,
    json_response,
    redirect_response,
    respond_with_html,
    respond_with_json,
    respond_with_json_bytes,
    respond_with_redirect,
    set_clickjacking_protection_headers,
    set_corp_headers,
    set_cors_headers,
)

TRICKY: dict[str, Any] = {
    "z": 1,
    "a": [3, 2, 1, {"y": None, "b": True, "a": False}],
    "snow": "\u2603 caf\u00e9 \U0001f600",
    "float": 1.5,
    "tiny": 1e-7,
    "big": 2**70,
    "neg": -(2**65),
    "nested": {"\u00e9": {"\u00e0": "x"}, "A": "y"},
    "escapes": "\"\\\n\t\x00\x1f</script>",
}


def returns(value: Any) -> Any:
    def callback(request: SynapseRequest, **params: Any) -> Any:
        return value

    return callback


# -- return values -------------------------------------------------------------------------


def test_tuple_return_is_canonical_json_with_all_headers() -> None:
    client = json_client(("GET", ["/x"], returns((201, TRICKY)), "S"))
    response = client.get("/x")
    assert_json_response(response, 201)
    assert response.data == canonicaljson.encode_canonical_json(TRICKY)


@pytest.mark.parametrize("obj", [[], {}, [1, "a", None], "just a string", 12, None, True])
def test_tuple_return_with_any_json_value(obj: Any) -> None:
    client = json_client(("GET", ["/x"], returns((200, obj)), "S"))
    response = client.get("/x")
    assert_json_response(response, 200)
    assert response.data == canonicaljson.encode_canonical_json(obj)


def test_async_callback_returning_tuple() -> None:
    async def inner() -> dict[str, Any]:
        return {"from": "coroutine"}

    async def callback(request: SynapseRequest, x: str) -> tuple[int, Any]:
        value = await inner()
        return 200, {**value, "x": x}

    client = json_client(("GET", ["/a/<x>"], callback, "Async"))
    response = client.get("/a/%E2%98%83")
    assert assert_json_response(response, 200) == {"from": "coroutine", "x": "\u2603"}


def test_async_callback_raising_synapse_error() -> None:
    async def callback(request: SynapseRequest) -> tuple[int, Any]:
        raise SynapseError(403, "no way", Codes.FORBIDDEN)

    client = json_client(("GET", ["/a"], callback, "Async"))
    assert_json_error(client.get("/a"), 403, "M_FORBIDDEN", "no way")


def test_async_method_on_rest_servlet() -> None:
    class Servlet(RestServlet):
        PATTERNS = ["/s/<name>"]

        async def on_GET(self, request: SynapseRequest, name: str) -> tuple[int, Any]:
            return 200, {"name": name}

        async def on_PUT(self, request: SynapseRequest, name: str) -> None:
            respond_with_json(request, 202, {"put": name}, send_cors=True)

    resource = JsonResource()
    Servlet().register(resource)
    client = make_client({"/": resource})
    assert assert_json_response(client.get("/s/n"), 200) == {"name": "n"}
    assert assert_json_response(client.put("/s/n"), 202) == {"put": "n"}


def test_async_direct_serve_resource() -> None:
    class Res(DirectServeJsonResource):
        async def on_GET(self, request: SynapseRequest) -> tuple[int, Any]:
            return 200, {"async": True}

    client = make_client({"/r": Res()})
    assert assert_json_response(client.get("/r"), 200) == {"async": True}


def test_werkzeug_response_is_sent_as_is() -> None:
    def callback(request: SynapseRequest) -> WerkzeugResponse:
        return WerkzeugResponse(b"plain text", status=203, headers={"X-Custom": "1"}, mimetype="text/plain")

    client = json_client(("GET", ["/w"], callback, "W"))
    response = client.get("/w")
    assert response.status_code == 203
    assert response.data == b"plain text"
    assert_header_once(response, "X-Custom", "1")
    assert_header_once(response, "Content-Type", "text/plain; charset=utf-8")
    assert_header_once(response, "Content-Length", "10")
    assert_headers_unique(response)


def test_werkzeug_response_head() -> None:
    def callback(request: SynapseRequest) -> WerkzeugResponse:
        return WerkzeugResponse(b"0123456789", mimetype="text/plain")

    client = json_client(("GET", ["/w"], callback, "W"))
    response = client.head("/w")
    assert response.status_code == 200
    assert response.data == b""
    assert response.headers["Content-Length"] == "10"


def test_generator_body_is_streamed_without_content_length() -> None:
    def callback(request: SynapseRequest) -> Iterator[bytes]:
        yield b'{"a":'
        yield b"[1,2,3]"
        yield b"}"

    client = json_client(("GET", ["/g"], callback, "G"))
    response = client.get("/g")
    assert response.status_code == 200
    assert response.data == b'{"a":[1,2,3]}'
    assert "Content-Length" not in response.headers
    assert_header_once(response, "Content-Type", "application/json")
    assert_header_once(response, "Cache-Control", NO_CACHE)
    assert_cors(response)
    assert_headers_unique(response)


def test_none_after_respond_with_json() -> None:
    def callback(request: SynapseRequest) -> None:
        respond_with_json(request, 201, {"b": 1, "a": "\u2603"}, send_cors=True)

    client = json_client(("POST", ["/r"], callback, "R"))
    response = client.post("/r")
    assert assert_json_response(response, 201) == {"a": "\u2603", "b": 1}
    assert response.data == canonicaljson.encode_canonical_json({"b": 1, "a": "\u2603"})


def test_finish_request_after_respond_with_json() -> None:
    def callback(request: SynapseRequest) -> None:
        respond_with_json(request, 200, {"done": True}, send_cors=True)
        finish_request(request)

    response = json_client(("GET", ["/r"], callback, "R")).get("/r")
    assert assert_json_response(response, 200) == {"done": True}


def test_respond_with_json_non_canonical() -> None:
    def callback(request: SynapseRequest) -> None:
        respond_with_json(request, 200, {"b": 1, "a": 2}, send_cors=True, canonical_json=False)

    response = json_client(("GET", ["/r"], callback, "R")).get("/r")
    assert assert_json_response(response, 200) == {"b": 1, "a": 2}
    assert b" " not in response.data


def test_none_after_respond_with_json_bytes() -> None:
    def callback(request: SynapseRequest) -> None:
        respond_with_json_bytes(request, 200, b'{"raw":true}', send_cors=True)

    response = json_client(("GET", ["/r"], callback, "R")).get("/r")
    assert response.data == b'{"raw":true}'
    assert_json_response(response, 200)


def test_none_after_respond_with_html() -> None:
    def callback(request: SynapseRequest) -> None:
        respond_with_html(request, 200, "<p>\u2603</p>")

    response = json_client(("GET", ["/r"], callback, "R")).get("/r")
    assert response.status_code == 200
    assert response.data == "<p>\u2603</p>".encode()
    assert_header_once(response, "Content-Type", "text/html; charset=utf-8")
    assert_header_once(response, "Content-Length", str(len(response.data)))
    for name, value in ANTI_FRAMING_HEADERS.items():
        assert_header_once(response, name, value)
    assert_headers_unique(response)


@pytest.mark.parametrize("cors", [False, True])
def test_none_after_respond_with_redirect(cors: bool) -> None:
    def callback(request: SynapseRequest) -> None:
        respond_with_redirect(request, b"https://example.org/next?a=1", 307, cors=cors)

    response = json_client(("GET", ["/r"], callback, "R")).get("/r")
    assert response.status_code == 307
    assert_header_once(response, "Location", "https://example.org/next?a=1")
    if cors:
        assert_cors(response)
    else:
        assert_no_cors(response)
    assert_headers_unique(response)


def test_none_without_respond_is_a_500(request_log: pytest.LogCaptureFixture) -> None:
    response = json_client(("GET", ["/r"], returns(None), "Forgetful")).get("/r")
    assert_json_error(response, 500, "M_UNKNOWN", "Internal server error")


def test_factory_responses_can_be_returned() -> None:
    client = json_client(
        ("GET", ["/j"], returns(json_response(202, {"b": 2, "a": 1})), "J"),
        ("GET", ["/h"], returns(html_response(200, "<b>hi</b>")), "H"),
        ("GET", ["/r"], returns(redirect_response("/there", 301)), "R"),
        ("GET", ["/rc"], returns(redirect_response("/there", cors=True)), "RC"),
    )
    j = client.get("/j")
    assert j.data == b'{"a":1,"b":2}'
    assert_json_response(j, 202)

    h = client.get("/h")
    assert h.status_code == 200
    assert h.data == b"<b>hi</b>"
    assert_header_once(h, "Content-Type", "text/html; charset=utf-8")
    assert_header_once(h, "Content-Length", "9")
    for name, value in ANTI_FRAMING_HEADERS.items():
        assert_header_once(h, name, value)
    assert_no_cors(h)

    r = client.get("/r")
    assert r.status_code == 301
    assert_header_once(r, "Location", "/there")
    assert_no_cors(r)

    rc = client.get("/rc")
    assert rc.status_code == 302
    assert_cors(rc)
    assert_headers_unique(rc)


def test_json_response_without_cors() -> None:
    response = json_client(("GET", ["/j"], returns(json_response(200, {}, send_cors=False)), "J")).get("/j")
    assert response.status_code == 200
    assert response.data == b"{}"
    assert_no_cors(response)
    assert_header_once(response, "Content-Type", "application/json")


def test_json_response_non_canonical() -> None:
    obj = {"b": 1, "a": [1, 2]}
    client = json_client(("GET", ["/j"], returns(json_response(200, obj, canonical_json=False)), "J"))
    response = client.get("/j")
    assert response.data == b'{"b":1,"a":[1,2]}'


# -- headers -----------------------------------------------------------------------------


def test_handler_cache_control_replaces_the_default() -> None:
    def callback(request: SynapseRequest) -> tuple[int, Any]:
        request.setHeader("Cache-Control", "public, max-age=60")
        return 200, {}

    response = json_client(("GET", ["/c"], callback, "C")).get("/c")
    assert response.status_code == 200
    assert_header_once(response, "Cache-Control", "public, max-age=60")
    assert_headers_unique(response)


def test_handler_extra_header_is_sent_once() -> None:
    def callback(request: SynapseRequest) -> tuple[int, Any]:
        request.setHeader("X-Thing", "1")
        request.setHeader("X-Thing", "2")
        return 200, {}

    response = json_client(("GET", ["/c"], callback, "C")).get("/c")
    assert_header_once(response, "X-Thing", "2")
    assert_headers_unique(response)


def test_set_corp_headers() -> None:
    def callback(request: SynapseRequest) -> tuple[int, Any]:
        set_corp_headers(request)
        return 200, {"x": 1}

    response = json_client(("GET", ["/c"], callback, "C")).get("/c")
    assert_header_once(response, "Cross-Origin-Resource-Policy", "cross-origin")
    assert_json_response(response, 200)


def test_set_cors_headers_does_not_duplicate() -> None:
    def callback(request: SynapseRequest) -> tuple[int, Any]:
        set_cors_headers(request)
        return 200, {}

    response = json_client(("GET", ["/c"], callback, "C")).get("/c")
    assert_json_response(response, 200)


def test_set_clickjacking_protection_headers_on_json() -> None:
    def callback(request: SynapseRequest) -> tuple[int, Any]:
        set_clickjacking_protection_headers(request)
        return 200, {}

    response = json_client(("GET", ["/c"], callback, "C")).get("/c")
    for name, value in ANTI_FRAMING_HEADERS.items():
        assert_header_once(response, name, value)
    assert_json_response(response, 200)


def test_set_cors_headers_on_html_response() -> None:
    def callback(request: SynapseRequest) -> None:
        set_cors_headers(request)
        respond_with_html(request, 200, "<p>x</p>")

    response = json_client(("GET", ["/c"], callback, "C")).get("/c")
    assert_cors(response)
    assert_headers_unique(response)


def test_cors_on_errors_too() -> None:
    def boom(request: SynapseRequest) -> tuple[int, Any]:
        raise SynapseError(400, "bad", Codes.INVALID_PARAM)

    client = json_client(("GET", ["/e"], boom, "E"))
    assert_json_error(client.get("/e"), 400, "M_INVALID_PARAM", "bad")
    assert_cors(client.get("/unknown"))


def test_msc3886_cors_variant() -> None:
    config = ServerConfig(experimental_cors_msc3886=True)
    client = json_client(("GET", ["/x"], returns((200, {})), "S"), config=config)
    for response in (client.get("/x"), client.get("/nope")):
        assert_cors(response, CORS_HEADERS_MSC3886)
        assert_headers_unique(response)


def test_msc3886_cors_variant_with_set_cors_headers() -> None:
    def callback(request: SynapseRequest) -> None:
        set_cors_headers(request)
        respond_with_html(request, 200, "<p>x</p>")

    client = json_client(("GET", ["/x"], callback, "S"), config=ServerConfig(experimental_cors_msc3886=True))
    response = client.get("/x")
    assert_cors(response, CORS_HEADERS_MSC3886)
    assert_headers_unique(response)


def test_send_cors_false_config_turns_cors_off() -> None:
    client = json_client(("GET", ["/x"], returns((200, {})), "S"), config=ServerConfig(send_cors=False))
    for response in (client.get("/x"), client.get("/nope"), client.options("/x")):
        for name in CORS_HEADERS:
            assert name not in response.headers, (response.status_code, name)


# -- encodings ------------------------------------------------------------------------------


def test_direct_serve_json_resource_is_compact_by_default() -> None:
    obj = {"z": [1, 2, {"b": None}], "a": "\u2603", "m": 0.5}

    class Res(DirectServeJsonResource):
        def on_GET(self, request: SynapseRequest) -> tuple[int, Any]:
            return 200, obj

    response = make_client({"/r": Res()}).get("/r")
    assert assert_json_response(response, 200) == obj
    assert response.data == json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def test_direct_serve_json_resource_canonical_when_asked() -> None:
    obj = {"z": [1, 2, {"b": None}], "a": "\u2603", "tiny": 2.5e-05}

    class Res(DirectServeJsonResource):
        def on_GET(self, request: SynapseRequest) -> tuple[int, Any]:
            return 200, obj

    response = make_client({"/r": Res(canonical_json=True)}).get("/r")
    assert response.data == canonicaljson.encode_canonical_json(obj)


def test_large_json_body_through_json_resource_is_canonical() -> None:
    obj = {"items": [{"n": i, "text": f"\u2603 {i}", "f": i / 7} for i in range(3000)]}
    response = json_client(("GET", ["/big"], returns((200, obj)), "Big")).get("/big")
    assert response.status_code == 200
    assert response.data == canonicaljson.encode_canonical_json(obj)
