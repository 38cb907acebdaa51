"""Servlet code written for Synapse runs unchanged (issue #10, sections 3 and 6).

What Synapse's servlets call on the request and on `synapse.http.server`,
each through the test Client, with Synapse's types (bytes where Twisted has bytes).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Iterator
from typing import Any, ClassVar

import pytest
from _helpers import INTERNAL_ERROR_BODY, assert_cors
from werkzeug.test import Client

from synwsgi import (
    DirectServeJsonResource,
    HttpServer,
    JsonResource,
    RestServlet,
    ServerConfig,
    Site,
    SynapseRequest,
    read_body,
    respond_with_redirect,
)


def _client(
    callback: Any, method: str = "GET", path: str = "/x", config: ServerConfig | None = None
) -> Client:
    resource = JsonResource()
    resource.register_paths(method, [path], callback, "Probe")
    return Client(Site({"/": resource}, config))


def test_request_headers_in_bytes_or_str() -> None:
    def probe(request: SynapseRequest) -> tuple[int, Any]:
        return 200, {
            "bytes": request.getHeader(b"X-Thing").decode(),  # type: ignore[union-attr]
            "str": request.getHeader("x-thing"),
            "raw": [v.decode() for v in request.requestHeaders.getRawHeaders(b"X-Thing")],
            "missing": request.requestHeaders.getRawHeaders(b"X-None", ["d"]),
            "ua": request.get_user_agent("none"),
        }

    body = _client(probe).get("/x", headers=[("X-Thing", "a"), ("User-Agent", "nio/1")]).json
    assert body == {"bytes": "a", "str": "a", "raw": ["a"], "missing": ["d"], "ua": "nio/1"}


def test_set_header_with_bytes_replaces_and_reaches_the_client() -> None:
    def probe(request: SynapseRequest) -> tuple[int, Any]:
        request.setHeader(b"X-Made-By", b"synwsgi")
        request.setHeader("Cache-Control", "max-age=5")
        return 200, {}

    response = _client(probe).get("/x")
    assert response.headers["X-Made-By"] == "synwsgi"
    assert response.headers.getlist("Cache-Control") == ["max-age=5"]  # replaces the JSON default
    assert_cors(response)


def test_args_answer_synapses_bytes_keys_and_werkzeugs_text_keys() -> None:
    seen: dict[str, Any] = {}

    def probe(request: SynapseRequest) -> tuple[int, Any]:
        args = request.args
        seen["args"] = dict(args.raw_items())
        seen["bytes_access"] = (args[b"dir"], args.get(b"from"), b"raw" in args, args.get(b"nope"))
        seen["text_access"] = (args["dir"], args.getlist("dir"), args.get("snow"), "raw" in args)
        seen["values"] = request.values.getlist("dir")
        seen["query_args"] = request.query_args.to_dict(flat=False)
        return 200, {}

    _client(probe).get("/x?from=s1&dir=b&dir=f&empty=&snow=%E2%98%83&raw=%FF")
    assert seen["bytes_access"] == ([b"b", b"f"], [b"s1"], True, None)
    assert seen["text_access"] == ("b", ["b", "f"], "\u2603", True)
    assert seen["values"] == ["b", "f"]
    assert seen["args"] == {
        b"from": [b"s1"],
        b"dir": [b"b", b"f"],
        b"empty": [b""],
        b"snow": ["☃".encode()],
        b"raw": [b"\xff"],
    }
    response = _client(lambda r: (200, r.query_args.to_dict())).get("/x?raw=%FF")
    assert response.status_code == 400 and response.json["errcode"] == "M_INVALID_PARAM"


def test_content_is_the_body_as_a_file_and_read_body_is_public() -> None:
    def probe(request: SynapseRequest) -> tuple[int, Any]:
        return 200, {"content": request.content.read().decode(), "again": read_body(request).decode()}

    assert _client(probe, "POST").post("/x", data=b'{"a":1}').json == {
        "content": '{"a":1}',
        "again": '{"a":1}',
    }


def test_client_address_method_and_redacted_uri() -> None:
    def probe(request: SynapseRequest) -> tuple[int, Any]:
        return 200, {
            "host": request.getClientAddress().host,
            "method": request.get_method(),
            "uri": request.get_redacted_uri(),
            "raw": request.uri.decode(),
        }

    body = _client(probe).get("/x?access_token=secret&a=b", environ_base={"REMOTE_ADDR": "10.1.2.3"}).json
    assert body == {
        "host": "10.1.2.3",
        "method": "GET",
        "uri": "/x?access_token=<redacted>&a=b",
        "raw": "/x?access_token=secret&a=b",
    }


@pytest.mark.parametrize("port", ["41234", 41234], ids=("str", "int"))
def test_client_address_port_from_any_server(port: Any) -> None:
    """gunicorn's gevent worker puts REMOTE_PORT in the environ as an int (getClientAddress was a 500)."""

    def probe(request: SynapseRequest) -> tuple[int, Any]:
        address = request.getClientAddress()
        return 200, {"host": address.host, "port": address.port}

    environ = {"REMOTE_ADDR": "10.1.2.3", "REMOTE_PORT": port}
    assert _client(probe).get("/x", environ_base=environ).json == {"host": "10.1.2.3", "port": 41234}


class _SynapseStyle(DirectServeJsonResource):
    """Synapse's constructor arguments and `_async_render_<METHOD>` handlers."""

    def __init__(self, hs: object) -> None:
        super().__init__(hs, canonical_json=True, extract_context=True, clock=object())

    async def _async_render_GET(self, request: SynapseRequest) -> tuple[int, Any]:
        return 200, {"via": "_async_render_GET"}


def test_synapse_constructor_and_async_render_handlers() -> None:
    client = Client(Site({"/s": _SynapseStyle(hs=object())}))
    assert client.get("/s").json == {"via": "_async_render_GET"}
    response = client.post("/s")
    assert response.status_code == 405 and response.headers["Allow"] == "GET, HEAD"


def test_respond_with_redirect_in_synapses_spelling() -> None:
    def probe(request: SynapseRequest) -> None:
        respond_with_redirect(request, b"https://example.org/next", statusCode=307, cors=True)

    response = _client(probe, "POST").post("/x")
    assert response.status_code == 307 and response.headers["Location"] == "https://example.org/next"
    assert_cors(response)


def test_register_servlets_into_an_http_server_protocol() -> None:
    class Ping(RestServlet):
        PATTERNS = ["/ping"]

        def on_GET(self, request: SynapseRequest) -> tuple[int, Any]:
            return 200, {"pong": True}

    def register_servlets(hs: object, http_server: HttpServer) -> None:
        Ping().register(http_server)

    resource = JsonResource(object())
    register_servlets(object(), resource)
    assert Client(Site({"/": resource})).get("/ping").json == {"pong": True}


def test_a_servlet_without_patterns_refuses_to_register() -> None:
    class Nothing(RestServlet):
        PATTERNS: ClassVar[list[str]] = []

        def on_GET(self, request: SynapseRequest) -> tuple[int, Any]:
            return 200, {}

    with pytest.raises(NotImplementedError):
        Nothing().register(JsonResource())


def test_any_exception_that_describes_itself_as_synapses_do_is_rendered() -> None:
    class ForeignError(Exception):
        """Shaped like synapse.api.errors.SynapseError, but not synwsgi's."""

        def __init__(self) -> None:
            super().__init__("quota")
            self.code = 507
            self.msg = "Storage quota exceeded"
            self.headers = {"X-Quota-Reset": "3600"}
            self.debug_context = "user @alice:example.org over by 3 MB"

        def error_dict(self, config: object) -> dict[str, Any]:
            return {"errcode": "ORG_EXAMPLE_QUOTA", "error": self.msg}

    def probe(request: SynapseRequest) -> None:
        raise ForeignError()

    response = _client(probe).get("/x")
    assert response.status_code == 507
    assert response.json == {"errcode": "ORG_EXAMPLE_QUOTA", "error": "Storage quota exceeded"}
    assert response.headers["X-Quota-Reset"] == "3600"
    assert b"alice" not in response.data  # debug_context is logged, never sent


def test_debug_context_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    from synwsgi import SynapseError

    def probe(request: SynapseRequest) -> None:
        raise SynapseError(403, "No", "M_FORBIDDEN", debug_context="room !secret:example.org")

    with caplog.at_level(logging.INFO, logger="synwsgi.errors"):
        response = _client(probe).get("/x")
    assert response.status_code == 403 and b"secret" not in response.data
    assert any("room !secret:example.org" in r.getMessage() for r in caplog.records)


class _Pending:
    """An awaitable that is not a coroutine (a Deferred, an asyncio future...)."""

    def __await__(self) -> Iterator[Any]:
        yield self
        return 42


def test_the_default_async_driver_refuses_what_it_cannot_resolve_clearly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def waits(request: SynapseRequest) -> tuple[int, Any]:
        return 200, {"value": await _Pending()}

    with caplog.at_level(logging.ERROR):
        response = _client(waits).get("/x")
    assert response.status_code == 500 and response.data == INTERNAL_ERROR_BODY
    assert any("ServerConfig(async_driver" in str(r.exc_info[1]) for r in caplog.records if r.exc_info)


def test_a_plugged_async_driver_resolves_asyncio_awaitables() -> None:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    def on_loop_thread(awaitable: Awaitable[Any]) -> Any:
        async def run() -> Any:
            return await awaitable

        return asyncio.run_coroutine_threadsafe(run(), loop).result(timeout=5)

    async def sleeps(request: SynapseRequest) -> tuple[int, Any]:
        await asyncio.sleep(0.01)  # real asyncio I/O: needs the loop
        return 200, {"slept": True}

    try:
        client = _client(sleeps, config=ServerConfig(async_driver=on_loop_thread))
        assert client.get("/x").json == {"slept": True}
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()
