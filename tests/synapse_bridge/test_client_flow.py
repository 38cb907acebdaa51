"""matrix-nio against Synapse's own, unmodified client servlets, served through synwsgi.

The servlets are `ClientRestResource`'s, registered into a synwsgi
`JsonResource` on a real `SynapseHomeServer` (SQLite) by
examples/synapse_bridge; the bridge runs the reactor in a thread of the
worker. Every server kind the bridge supports: gunicorn gthread, gunicorn
gevent and Werkzeug's dev server.
"""

from __future__ import annotations

import asyncio
import re
import socket
import time
from typing import Any

import pytest
from nio import (
    AsyncClient,
    JoinResponse,
    LoginResponse,
    LogoutResponse,
    RegisterResponse,
    RoomCreateResponse,
    RoomGetStateEventError,
    RoomGetStateEventResponse,
    RoomPreset,
    RoomPutStateResponse,
    RoomSendResponse,
    SyncResponse,
)

from tests.homeserver._client_helpers import raw_json, unique
from tests.integration.servers import Server, open_connection

pytestmark = pytest.mark.timeout(240)

PASSWORD = "correct horse battery"


async def register(url: str, name: str) -> AsyncClient:
    client = AsyncClient(url, name)
    response = await client.register(name, PASSWORD, device_name="bridge test")
    assert isinstance(response, RegisterResponse), response
    assert client.user_id == f"@{name}:localhost"
    return client


def bodies(sync: SyncResponse, room_id: str) -> list[str]:
    room = sync.rooms.join.get(room_id)
    return [] if room is None else [e.body for e in room.timeline.events if hasattr(e, "body")]


async def client_flow(url: str) -> dict[str, float]:
    alice_name, bob_name = unique("alice"), unique("bob")
    alice = await register(url, alice_name)
    bob = await register(url, bob_name)
    laptop = AsyncClient(url, f"@{alice_name}:localhost")
    try:
        # /login: a second device for alice.
        login = await laptop.login(PASSWORD, device_name="laptop")
        assert isinstance(login, LoginResponse), login
        assert login.device_id != alice.device_id

        created = await alice.room_create(name="bridged", preset=RoomPreset.public_chat)
        assert isinstance(created, RoomCreateResponse), created
        room_id = created.room_id
        joined = await bob.join(room_id)
        assert isinstance(joined, JoinResponse), joined

        # PUT .../send/{type}/{txn}: Synapse's transaction cache keys on the
        # request path (`request.path.decode()`): the same txn id is one event.
        content = {"msgtype": "m.text", "body": "only once"}
        first = await alice.room_send(room_id, "m.room.message", content, tx_id="txn-1")
        again = await alice.room_send(room_id, "m.room.message", content, tx_id="txn-1")
        assert isinstance(first, RoomSendResponse), first
        assert isinstance(again, RoomSendResponse), again
        assert again.event_id == first.event_id

        # Room state, with a state key that needs percent-encoding, and a 404.
        put = await alice.room_put_state(room_id, "org.example.bridge", {"k": "v"}, state_key="a/b c")
        assert isinstance(put, RoomPutStateResponse), put
        got = await bob.room_get_state_event(room_id, "org.example.bridge", "a/b c")
        assert isinstance(got, RoomGetStateEventResponse), got
        assert got.content == {"k": "v"}
        missing = await bob.room_get_state_event(room_id, "org.example.bridge", "nothing here")
        assert isinstance(missing, RoomGetStateEventError), missing
        assert missing.status_code == "M_NOT_FOUND"

        # A /sync long-poll parked on the server, woken by alice's send.
        caught_up = await bob.sync(timeout=0, full_state=False)
        assert isinstance(caught_up, SyncResponse), caught_up
        poll = asyncio.create_task(bob.sync(timeout=30_000, since=caught_up.next_batch))
        await asyncio.sleep(0.5)
        assert not poll.done(), "the /sync answered before anything happened"
        sent_at = time.monotonic()
        woke = await alice.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": "wake up"})
        assert isinstance(woke, RoomSendResponse), woke
        woken = await asyncio.wait_for(poll, 15)
        wake_latency = time.monotonic() - sent_at
        assert isinstance(woken, SyncResponse), woken
        assert "wake up" in bodies(woken, room_id)

        logout = await laptop.logout()
        assert isinstance(logout, LogoutResponse), logout
        return {"wake_latency_s": wake_latency}
    finally:
        for client in (alice, bob, laptop):
            await client.close()


def test_nio_client_flow(bridge: Server, record_property: Any) -> None:
    figures = asyncio.run(client_flow(bridge.url))
    record_property("wake_latency_s", figures["wake_latency_s"])
    assert figures["wake_latency_s"] < 5, figures


def _registered(url: str) -> tuple[str, str]:
    """(access token, a /sync `since` token that is up to date) for a fresh user."""
    status, body = raw_json(
        url,
        "POST",
        "/_matrix/client/v3/register",
        {"username": unique("carol"), "password": PASSWORD, "auth": {"type": "m.login.dummy"}},
    )
    assert status == 200, body
    token = body["access_token"]
    status, sync = raw_json(url, "GET", "/_matrix/client/v3/sync?timeout=0", token=token)
    assert status == 200, sync
    return token, sync["next_batch"]


def test_parked_sync_is_cancelled_when_its_client_hangs_up(bridge: Server, record_property: Any) -> None:
    token, since = _registered(bridge.url)
    mark = bridge.log_mark()
    sock = open_connection(bridge, timeout=5)
    try:
        sock.sendall(
            f"GET /_matrix/client/v3/sync?timeout=60000&since={since} HTTP/1.1\r\n"
            f"Host: localhost\r\nAuthorization: Bearer {token}\r\n\r\n".encode()
        )
        time.sleep(1.0)
        sock.setblocking(False)
        with pytest.raises(BlockingIOError):
            sock.recv(1)  # still parked: nothing answered
    finally:
        sock.close()
    closed_at = time.monotonic()
    bridge.wait_for_log(re.compile(r'499!? "GET /_matrix/client/v3/sync\?'), since=mark, timeout=10)
    close_to_499 = time.monotonic() - closed_at
    record_property("close_to_499_s", close_to_499)
    # The watcher sees the FIN at once; Synapse's ResponseCache keeps the
    # first /sync's computation going, so the request ends after the grace.
    assert close_to_499 < 3, close_to_499
    log = bridge.log(since=mark)
    assert "Traceback" not in log, log
    # The worker goes on: the reactor thread is free, a new /sync answers.
    path = f"/_matrix/client/v3/sync?timeout=0&since={since}"
    status, body = raw_json(bridge.url, "GET", path, token=token)
    assert status == 200, body


def test_synapse_errors_render_as_synapse_does(bridge: Server) -> None:
    status, body = raw_json(bridge.url, "GET", "/_matrix/client/v3/account/whoami", token="not-a-token")
    assert status == 401
    assert body == {
        "errcode": "M_UNKNOWN_TOKEN",
        "error": "Invalid access token passed.",
        "soft_logout": False,
    }
    status, body = raw_json(bridge.url, "GET", "/_matrix/client/v3/account/whoami")
    assert (status, body["errcode"]) == (401, "M_MISSING_TOKEN")
    # UIA: the first /register without auth is Synapse's 401 with the flows.
    status, body = raw_json(bridge.url, "POST", "/_matrix/client/v3/register", {"username": unique("dave")})
    assert status == 401
    assert {"stages": ["m.login.dummy"]} in body["flows"] and body["session"]
    # A path no servlet has: synwsgi's 404, as Synapse answers it.
    status, body = raw_json(bridge.url, "GET", "/_matrix/client/v3/no/such/thing")
    assert (status, body["errcode"]) == (404, "M_UNRECOGNIZED")


def test_html_written_by_a_servlet_is_sent(bridge: Server) -> None:
    """The UIA fallback page: Synapse's `respond_with_html` writes and finishes the request."""
    with socket.create_connection((bridge.host, bridge.port), timeout=10) as sock:
        sock.sendall(
            b"GET /_matrix/client/v3/auth/m.login.terms/fallback/web?session=abc HTTP/1.1\r\n"
            b"Host: localhost\r\nConnection: close\r\n\r\n"
        )
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, page = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    assert b"text/html" in head.lower()
    assert b"abc" in page
