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


def test_common_client_endpoints_answer_without_a_500(bridge: Server) -> None:
    """A pass over ~50 more of Synapse's client servlets: each answers as Synapse would
    (many 200s; a 4xx where the request cannot succeed here), never a 500."""
    url = bridge.url
    token, since = _registered(url)
    status, me = raw_json(url, "GET", "/_matrix/client/v3/account/whoami", token=token)
    assert status == 200, me
    uid, device = me["user_id"], me["device_id"]
    status, room = raw_json(url, "POST", "/_matrix/client/v3/createRoom", {"preset": "public_chat"}, token)
    assert status == 200, room
    rid = room["room_id"]
    message = {"msgtype": "m.text", "body": "hello bridge"}
    status, sent = raw_json(
        url, "PUT", f"/_matrix/client/v3/rooms/{rid}/send/m.room.message/t1", message, token
    )
    assert status == 200, sent
    eid = sent["event_id"]
    status, made = raw_json(url, "POST", f"/_matrix/client/v3/user/{uid}/filter", {"room": {}}, token)
    assert status == 200, made
    alias = f"%23{unique('alias')}:localhost"
    v3, v1 = "/_matrix/client/v3", "/_matrix/client/v1"
    calls: list[tuple[str, str, Any, int | None]] = [
        ("GET", "/_matrix/client/versions", None, 200),
        ("GET", f"{v3}/capabilities", None, 200),
        ("GET", f"{v3}/login", None, 200),
        ("GET", f"{v3}/register/available?username={unique('free')}", None, 200),
        ("GET", f"{v3}/pushrules/", None, 200),
        ("GET", f"{v3}/devices", None, 200),
        ("GET", f"{v3}/devices/{device}", None, 200),
        ("PUT", f"{v3}/user/{uid}/account_data/org.example.a", {"a": 1}, 200),
        ("GET", f"{v3}/user/{uid}/account_data/org.example.a", None, 200),
        ("PUT", f"{v3}/user/{uid}/rooms/{rid}/account_data/org.example.r", {"r": 1}, 200),
        ("GET", f"{v3}/user/{uid}/rooms/{rid}/account_data/org.example.r", None, 200),
        ("PUT", f"{v3}/profile/{uid}/displayname", {"displayname": "Bridged"}, 200),
        ("GET", f"{v3}/profile/{uid}", None, 200),
        ("GET", f"{v3}/profile/{uid}/displayname", None, 200),
        ("GET", f"{v3}/joined_rooms", None, 200),
        ("GET", f"{v3}/user/{uid}/filter/{made['filter_id']}", None, 200),
        ("GET", f"{v3}/rooms/{rid}/messages?dir=b&limit=5", None, 200),
        ("GET", f"{v3}/rooms/{rid}/members", None, 200),
        ("GET", f"{v3}/rooms/{rid}/joined_members", None, 200),
        ("GET", f"{v3}/rooms/{rid}/state", None, 200),
        ("GET", f"{v3}/rooms/{rid}/state/m.room.create", None, 200),
        ("GET", f"{v3}/rooms/{rid}/context/{eid}", None, 200),
        ("GET", f"{v3}/rooms/{rid}/event/{eid}", None, 200),
        ("PUT", f"{v3}/rooms/{rid}/typing/{uid}", {"typing": True, "timeout": 1000}, 200),
        ("POST", f"{v3}/rooms/{rid}/receipt/m.read/{eid}", {}, 200),
        ("POST", f"{v3}/rooms/{rid}/read_markers", {"m.fully_read": eid}, 200),
        ("PUT", f"{v3}/user/{uid}/rooms/{rid}/tags/u.work", {"order": 0.5}, 200),
        ("GET", f"{v3}/user/{uid}/rooms/{rid}/tags", None, 200),
        ("POST", f"{v3}/keys/upload", {}, 200),
        ("POST", f"{v3}/keys/query", {"device_keys": {uid: []}}, 200),
        ("GET", f"{v3}/keys/changes?from={since}&to={since}", None, 200),
        ("GET", f"{v3}/room_keys/version", None, 404),
        ("GET", f"{v3}/notifications", None, 200),
        ("PUT", f"{v3}/presence/{uid}/status", {"presence": "online"}, 200),
        ("GET", f"{v3}/presence/{uid}/status", None, 200),
        ("PUT", f"{v3}/directory/room/{alias}", {"room_id": rid}, 200),
        ("GET", f"{v3}/directory/room/{alias}", None, 200),
        ("GET", f"{v3}/rooms/{rid}/aliases", None, 200),
        ("GET", f"{v3}/publicRooms", None, 200),
        ("POST", f"{v3}/user_directory/search", {"search_term": "bridge"}, 200),
        ("GET", f"{v3}/voip/turnServer", None, 200),
        ("GET", f"{v3}/pushers", None, 200),
        ("GET", f"{v3}/thirdparty/protocols", None, 200),
        ("GET", f"{v3}/account/3pid", None, 200),
        ("PUT", f"{v3}/sendToDevice/m.test/td1", {"messages": {}}, 200),
        ("GET", f"{v1}/rooms/{rid}/relations/{eid}", None, 200),
        ("GET", f"{v1}/rooms/{rid}/threads", None, 200),
        ("GET", f"{v1}/rooms/{rid}/hierarchy", None, 200),
        ("GET", f"{v1}/rooms/{rid}/timestamp_to_event?ts=0&dir=f", None, None),
        ("POST", f"{v3}/user/{uid}/openid/request_token", {}, 200),
        ("POST", f"{v3}/search", {"search_categories": {"room_events": {"search_term": "hello"}}}, 200),
        ("GET", f"{v3}/initialSync?limit=1", None, 200),
        ("GET", f"{v3}/rooms/{rid}/initialSync", None, 200),
        ("GET", f"{v3}/events?timeout=0", None, 200),
        ("POST", f"{v3}/rooms/{rid}/report/{eid}", {"reason": "test"}, 200),
        ("PUT", f"{v3}/rooms/{rid}/redact/{eid}/r1", {}, 200),
        ("POST", f"{v3}/rooms/{rid}/invite", {"user_id": "@nobody:localhost"}, None),
        ("POST", f"{v3}/delete_devices", {"devices": []}, None),
        ("POST", f"{v3}/refresh", {"refresh_token": "nope"}, None),
        ("GET", f"{v1}/register/m.login.registration_token/validity?token=x", None, None),
        ("GET", f"{v3}/events/{eid}", None, 200),
        ("GET", f"{v3}/directory/list/room/{rid}", None, 200),
        ("POST", f"{v3}/keys/claim", {"one_time_keys": {}}, 200),
        ("GET", f"{v3}/room_keys/keys?version=1", None, None),
        ("GET", f"{v3}/thirdparty/protocol/irc", None, None),
        ("POST", f"{v3}/pushers/set", {"pushkey": "k", "kind": None, "app_id": "a"}, None),
        ("POST", f"{v3}/users/{uid}/report", {"reason": "test"}, None),
        ("POST", f"{v3}/rooms/{rid}/report", {"reason": "test"}, None),
        ("GET", f"{v3}/admin/whois/{uid}", None, None),
        ("POST", "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync", {"lists": {}}, 200),
        ("POST", f"{v3}/rooms/{rid}/leave", {}, 200),
        ("POST", f"{v3}/rooms/{rid}/forget", {}, 200),
        ("POST", f"{v3}/logout/all", {}, 200),
    ]
    wrong = []
    for method, path, body, expected in calls:
        status, answer = raw_json(url, method, path, body, token)
        if status >= 500 or (expected is not None and status != expected):
            wrong.append((method, path, status, answer))
    assert not wrong, wrong
