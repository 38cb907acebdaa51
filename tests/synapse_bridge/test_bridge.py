"""The bridge in-process: the Twisted request surface, the Deferred driver, Synapse's errors.

Handlers here are written as Synapse servlets are (`async def`, awaiting
Deferreds fired by the reactor); the reactor runs in a thread of this
process, as in a worker. Errors are Synapse's own classes (the test
dependency), rendered through synwsgi's duck-typed error door.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from synapse.api.errors import Codes, LimitExceededError, SynapseError, UnstableSpecAuthError
from twisted.internet import defer, task
from twisted.internet.address import IPv4Address, IPv6Address
from werkzeug.test import Client

from synwsgi import JsonResource, ServerConfig, Site
from synwsgi.contrib.twisted import DeferredDriver, ReactorThread, TwistedRequest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def reactor_thread() -> ReactorThread:
    return ReactorThread.start()


def make_client(reactor_thread: ReactorThread, resource: JsonResource, **driver: Any) -> Client:
    config = ServerConfig(async_driver=DeferredDriver(reactor_thread, **driver))
    return Client(Site({"/_matrix/client": resource}, config=config, request_class=TwistedRequest))


@pytest.fixture
def seen() -> dict[str, Any]:
    return {}


@pytest.fixture
def client(reactor_thread: ReactorThread, seen: dict[str, Any]) -> Iterator[Client]:
    reactor = reactor_thread.reactor
    resource = JsonResource()

    async def later(request: TwistedRequest) -> tuple[int, Any]:
        # A Deferred that fires on the reactor, later: the servlets' common case.
        value = await task.deferLater(reactor, 0.01, lambda: "fired")  # type: ignore[arg-type]
        return 200, {"value": value, "in_reactor": reactor_thread.in_reactor_thread()}

    def deferred(request: TwistedRequest) -> defer.Deferred[tuple[int, Any]]:
        return task.deferLater(reactor, 0.01, lambda: (201, {"plain": "deferred"}))  # type: ignore[arg-type]

    async def surface(request: TwistedRequest, name: str) -> tuple[int, Any]:
        seen["path"] = request.path
        seen["uri"] = request.uri
        seen["text_path"] = request.text_path
        seen["werkzeug_urls"] = request.url, request.base_url, request.full_path
        seen["method"] = request.method.decode("utf-8")
        seen["args"] = request.args[b"since"], request.args.get(b"missing"), b"since" in request.args
        seen["address"] = request.getClientAddress()
        seen["ip"] = request.get_client_ip_if_available()
        seen["info"] = request.request_info()
        seen["auth"] = request.requestHeaders.getRawHeaders(b"Authorization")
        seen["werkzeug_header"] = request.headers.get("User-Agent")
        seen["disconnected"] = request._disconnected
        seen["body"] = request.content.read()
        request.responseHeaders.setRawHeaders(b"X-Bridge", [b"one"])
        seen["has_header"] = request.responseHeaders.hasHeader(b"x-bridge")
        request.setHeader(b"Cache-Control", b"no-store")
        return 200, {"name": name}

    async def fail(request: TwistedRequest, kind: str) -> tuple[int, Any]:
        await task.deferLater(reactor, 0, lambda: None)  # type: ignore[arg-type]
        if kind == "synapse":
            raise SynapseError(403, "Not yours", Codes.FORBIDDEN)
        if kind == "limit":
            raise LimitExceededError("test", retry_after_ms=1500)
        if kind == "unstable":
            raise UnstableSpecAuthError(403, "Suspended", "ORG.MATRIX.MSC3823.USER_ACCOUNT_SUSPENDED")
        raise ValueError("a bug")

    resource.register_paths("GET", ["/_matrix/client/later"], later, "Later")
    resource.register_paths("GET", ["/_matrix/client/deferred"], deferred, "Deferred")
    resource.register_paths("POST", ["/_matrix/client/surface/<name>"], surface, "Surface")
    resource.register_paths("GET", ["/_matrix/client/fail/<kind>"], fail, "Fail")
    msc3848 = SimpleNamespace(experimental=SimpleNamespace(msc3848_enabled=True))
    yield make_client(reactor_thread, resource, error_config=msc3848)


def test_handlers_await_deferreds_fired_by_the_reactor(client: Client) -> None:
    response = client.get("/_matrix/client/later")
    assert (response.status_code, response.json) == (200, {"value": "fired", "in_reactor": True})
    response = client.get("/_matrix/client/deferred")
    assert (response.status_code, response.json) == (201, {"plain": "deferred"})


def test_request_answers_the_twisted_surface(client: Client, seen: dict[str, Any]) -> None:
    response = client.post(
        "/_matrix/client/surface/a%2Fb?since=s1&since=s2",
        json={"k": 1},
        headers={"Authorization": "Bearer tok", "User-Agent": "ua/1"},
        environ_base={"REMOTE_ADDR": "192.0.2.7", "REMOTE_PORT": "4242"},
    )
    assert (response.status_code, response.json) == (200, {"name": "a/b"})
    assert response.headers["X-Bridge"] == "one"
    assert response.headers["Cache-Control"] == "no-store"
    assert seen["path"] == b"/_matrix/client/surface/a%2Fb"  # bytes, still encoded
    assert seen["uri"] == b"/_matrix/client/surface/a%2Fb?since=s1&since=s2"
    assert seen["text_path"] == "/_matrix/client/surface/a/b"
    assert seen["werkzeug_urls"] == (
        "http://localhost/_matrix/client/surface/a/b?since=s1&since=s2",
        "http://localhost/_matrix/client/surface/a/b",
        "/_matrix/client/surface/a/b?since=s1&since=s2",
    )
    assert seen["method"] == "POST"
    assert seen["args"] == ([b"s1", b"s2"], None, True)
    assert seen["address"] == IPv4Address("TCP", "192.0.2.7", 4242)
    assert seen["ip"] == "192.0.2.7"
    assert (seen["info"].user_agent, seen["info"].ip) == ("ua/1", "192.0.2.7")
    assert seen["auth"] == [b"Bearer tok"]
    assert seen["werkzeug_header"] == "ua/1"
    assert seen["disconnected"] is False
    assert seen["body"] == b'{"k": 1}'
    assert seen["has_header"] is True


def test_ipv6_peer_is_an_ipv6_address(client: Client, seen: dict[str, Any]) -> None:
    client.post(
        "/_matrix/client/surface/x?since=s", data=b"", environ_base={"REMOTE_ADDR": "::1", "REMOTE_PORT": 9}
    )
    assert seen["address"] == IPv6Address("TCP", "::1", 9)


def test_synapse_errors_render_as_synapse_renders_them(client: Client) -> None:
    response = client.get("/_matrix/client/fail/synapse")
    assert (response.status_code, response.json) == (403, {"errcode": "M_FORBIDDEN", "error": "Not yours"})
    response = client.get("/_matrix/client/fail/limit")
    assert response.status_code == 429
    assert response.json == {
        "errcode": "M_LIMIT_EXCEEDED",
        "error": "Too Many Requests",
        "retry_after_ms": 1500,
    }
    assert response.headers["Retry-After"] == "2"
    # error_dict gets the application's config (Synapse's HomeServerConfig), not synwsgi's.
    response = client.get("/_matrix/client/fail/unstable")
    assert response.status_code == 403
    assert response.json == {
        "errcode": "M_FORBIDDEN",
        "error": "Suspended",
        "org.matrix.msc3848.unstable.errcode": "ORG.MATRIX.MSC3823.USER_ACCOUNT_SUSPENDED",
    }


def test_other_failures_are_a_bare_500(client: Client, caplog: pytest.LogCaptureFixture) -> None:
    response = client.get("/_matrix/client/fail/bug")
    assert (response.status_code, response.json) == (
        500,
        {"errcode": "M_UNKNOWN", "error": "Internal server error"},
    )
    assert "ValueError: a bug" in caplog.text


def test_start_hook_runs_in_the_reactor_thread(reactor_thread: ReactorThread) -> None:
    """`start` wraps each awaitable (Synapse: its LoggingContext), in the reactor's thread."""
    calls: list[tuple[str, bool]] = []

    def start(request: Any, awaitable: Any) -> Any:
        calls.append((request.request_id.split("-")[0], reactor_thread.in_reactor_thread()))
        return awaitable()

    async def hello(request: TwistedRequest) -> tuple[int, Any]:
        return 200, {}

    resource = JsonResource()
    resource.register_paths("GET", ["/_matrix/client/hello"], hello, "Hello")
    assert make_client(reactor_thread, resource, start=start).get("/_matrix/client/hello").status_code == 200
    assert calls == [("GET", True)]


def test_reactor_thread_call_waits_for_the_result(reactor_thread: ReactorThread) -> None:
    reactor = reactor_thread.reactor
    assert reactor_thread.call(lambda: task.deferLater(reactor, 0.01, lambda: 7)) == 7  # type: ignore[arg-type]
    with pytest.raises(ZeroDivisionError):
        reactor_thread.call(lambda: 1 / 0)
    assert ReactorThread.start() is reactor_thread  # one per process


def test_synwsgi_imports_without_twisted() -> None:
    """The bridge is optional: the core never imports it, nor Twisted."""
    code = "import sys; sys.modules['twisted'] = None; import synwsgi, synwsgi.contrib; print('ok')"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.stdout.strip() == "ok", result.stderr


def test_the_bridge_never_imports_synapse() -> None:
    """Synapse (AGPL-3.0) reaches the bridge only as objects handed over at run time."""
    for path in sorted((ROOT / "synwsgi").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = (
                [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else []
            )
            assert not [n for n in names if n.split(".")[0] == "synapse"], path
            if path.parent == ROOT / "synwsgi":
                assert not [n for n in names if "contrib" in n or n.split(".")[0] == "twisted"], path
