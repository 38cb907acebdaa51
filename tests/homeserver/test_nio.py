"""matrix-nio drives the example homeserver end to end over a real gunicorn (gevent).

Runs once on SQLite and once on PostgreSQL (the `homeserver` fixture).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from nio import (
    AsyncClient,
    JoinResponse,
    LoginError,
    MessageDirection,
    ReceiptEvent,
    ReceiptType,
    RegisterResponse,
    RoomCreateResponse,
    RoomGetStateEventResponse,
    RoomMessagesResponse,
    RoomPreset,
    RoomPutStateError,
    RoomPutStateResponse,
    RoomSendResponse,
    SyncResponse,
    UpdateReceiptMarkerResponse,
)

from ._client_helpers import raw_json, unique

pytestmark = pytest.mark.timeout(180)

# (A key that starts with "@" is that user's: the authorization rules refuse it to anyone else.)
ODD_STATE_KEYS = ["a/b", "100%", "50%25", "ünïcødé ☃", "with space", "?q=1#frag", "", "x@y:z/w"]


async def register(url: str, name: str) -> AsyncClient:
    client = AsyncClient(url, name)
    response = await client.register(name, "correct horse", device_name="nio test")
    assert isinstance(response, RegisterResponse), response
    assert client.access_token and client.user_id == f"@{name}:localhost"
    return client


async def sync_once(client: AsyncClient, since: str | None, timeout: int = 0) -> SyncResponse:
    response = await client.sync(timeout=timeout, since=since, full_state=False)
    assert isinstance(response, SyncResponse), response
    return response


def bodies(sync: SyncResponse, room_id: str) -> list[str]:
    room = sync.rooms.join.get(room_id)
    if room is None:
        return []
    return [event.body for event in room.timeline.events if hasattr(event, "body")]


def receipts(sync: SyncResponse, room_id: str) -> set[tuple[str, str]]:
    """(user, receipt type) of every receipt in a room's ephemeral events."""
    room = sync.rooms.join.get(room_id)
    return {
        (receipt.user_id, str(getattr(receipt.receipt_type, "value", receipt.receipt_type)))
        for event in (room.ephemeral if room else [])
        if isinstance(event, ReceiptEvent)
        for receipt in event.receipts
    }


async def parked_sync_wakes(
    waiter: AsyncClient, sender: AsyncClient, room_id: str, since: str, texts: list[str]
) -> tuple[float, str]:
    """Park `waiter`'s /sync, send `texts` from `sender`; return (wake latency, next token).

    Keeps syncing until every text arrived, and checks they came in order.
    """
    since = (await sync_once(waiter, since)).next_batch  # catch up first
    poll = asyncio.create_task(waiter.sync(timeout=30_000, since=since))
    await asyncio.sleep(0.3)  # parked on the server by now
    assert not poll.done()
    sent_at = time.monotonic()
    for index, text in enumerate(texts):
        response = await sender.room_send(
            room_id, "m.room.message", {"msgtype": "m.text", "body": text}, tx_id=f"{text}-{index}"
        )
        assert isinstance(response, RoomSendResponse), response
    first = await asyncio.wait_for(poll, 10)
    latency = time.monotonic() - sent_at
    assert isinstance(first, SyncResponse), first
    received = bodies(first, room_id)
    token = first.next_batch
    while len(received) < len(texts):
        more = await sync_once(waiter, token, timeout=5000)
        received += bodies(more, room_id)
        token = more.next_batch
    assert received == texts
    return latency, token


async def nio_flow(url: str) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    started = time.monotonic()
    alice = await register(url, unique("alice"))
    bob = await register(url, unique("bob"))
    try:
        # Rooms: one joined by id, one by alias, one by invitation.
        alias_local = unique("lobby")
        created = await alice.room_create(
            name="Lobby",
            topic="all welcome",
            alias=alias_local,
            preset=RoomPreset.public_chat,
            initial_state=[{"type": "org.example.flag", "state_key": "", "content": {"on": True}}],
        )
        assert isinstance(created, RoomCreateResponse), created
        lobby = created.room_id
        by_id = await alice.room_create(name="By id", preset=RoomPreset.public_chat)
        assert isinstance(by_id, RoomCreateResponse), by_id
        private = await alice.room_create(
            name="Private", preset=RoomPreset.private_chat, invite=[bob.user_id]
        )
        assert isinstance(private, RoomCreateResponse), private

        joined = await bob.join(by_id.room_id)
        assert isinstance(joined, JoinResponse) and joined.room_id == by_id.room_id, joined
        joined = await bob.join(f"#{alias_local}:localhost")
        assert isinstance(joined, JoinResponse) and joined.room_id == lobby, joined
        joined = await bob.join(private.room_id)  # invited at creation
        assert isinstance(joined, JoinResponse), joined

        alice_sync = await sync_once(alice, None)
        bob_sync = await sync_once(bob, None)
        for room_id in (lobby, by_id.room_id, private.room_id):
            assert room_id in bob_sync.rooms.join, (room_id, list(bob_sync.rooms.join))
            assert bob.rooms[room_id].member_count == 2
        assert bob.rooms[lobby].name == "Lobby" and bob.rooms[lobby].topic == "all welcome"
        assert bob.rooms[lobby].canonical_alias == f"#{alias_local}:localhost"

        # Long-polls parked before a send wake quickly, with the messages in order.
        latencies = []
        bob_token, alice_token = bob_sync.next_batch, alice_sync.next_batch
        for round_ in range(3):
            latency, bob_token = await parked_sync_wakes(
                bob, alice, lobby, bob_token, [f"hello {round_}.{i}" for i in range(3)]
            )
            latencies.append(latency)
            latency, alice_token = await parked_sync_wakes(
                alice, bob, lobby, alice_token, [f"reply {round_}.{i}" for i in range(2)]
            )
            latencies.append(latency)
        figures["wake_latencies_s"] = latencies
        assert max(latencies) < 0.5, latencies

        # Receipts: a public one reaches every member, a private one only its owner.
        read_me = await alice.room_send(
            lobby, "m.room.message", {"msgtype": "m.text", "body": "r"}, tx_id="r"
        )
        assert isinstance(read_me, RoomSendResponse), read_me
        alice_mark = (await sync_once(alice, alice_token)).next_batch
        bob_mark = (await sync_once(bob, bob_token)).next_batch
        marked = await bob.update_receipt_marker(lobby, read_me.event_id, ReceiptType.read_private)
        assert isinstance(marked, UpdateReceiptMarkerResponse), marked
        marked = await alice.update_receipt_marker(lobby, read_me.event_id, ReceiptType.read)
        assert isinstance(marked, UpdateReceiptMarkerResponse), marked
        assert receipts(await sync_once(alice, alice_mark), lobby) == {(alice.user_id, "m.read")}
        assert receipts(await sync_once(bob, bob_mark), lobby) == {
            (alice.user_id, "m.read"),
            (bob.user_id, "m.read.private"),
        }

        # A retried transaction id gives the same event, stored once.
        content = {"msgtype": "m.text", "body": "only once"}
        first = await alice.room_send(lobby, "m.room.message", content, tx_id="retry-me")
        again = await alice.room_send(lobby, "m.room.message", content, tx_id="retry-me")
        assert isinstance(first, RoomSendResponse) and isinstance(again, RoomSendResponse)
        assert first.event_id == again.event_id

        # Odd state keys round-trip.
        for key in ODD_STATE_KEYS:
            put = await alice.room_put_state(lobby, "org.example.odd", {"key": key}, state_key=key)
            assert isinstance(put, RoomPutStateResponse), (key, put)
        refused = await alice.room_put_state(lobby, "org.example.odd", {}, state_key="@x:y/z")
        assert isinstance(refused, RoomPutStateError) and refused.status_code == "M_FORBIDDEN", refused
        for key in ODD_STATE_KEYS:
            got = await bob.room_get_state_event(lobby, "org.example.odd", key)
            assert isinstance(got, RoomGetStateEventResponse), (key, got)
            assert got.content == {"key": key}

        # /messages: back to m.room.create, then forward again over the same events.
        back: list[Any] = []
        token: str | None = (await sync_once(bob, None)).next_batch
        while token is not None:
            page = await bob.room_messages(lobby, start=token, direction=MessageDirection.back, limit=7)
            assert isinstance(page, RoomMessagesResponse), page
            back += page.chunk
            token = page.end if page.chunk else None
        assert back[-1].source["type"] == "m.room.create"
        assert [e.body for e in back if hasattr(e, "body")].count("only once") == 1
        forward: list[Any] = []
        token = "s0"
        while token is not None:
            page = await bob.room_messages(lobby, start=token, direction=MessageDirection.front, limit=9)
            assert isinstance(page, RoomMessagesResponse), page
            forward += page.chunk
            token = page.end if page.chunk else None
        assert [e.event_id for e in forward] == [e.event_id for e in reversed(back)]
        figures["history_events"] = len(back)

        # Wrong password.
        stranger = AsyncClient(url, alice.user_id)
        wrong = await stranger.login("not the password")
        assert isinstance(wrong, LoginError) and wrong.status_code == "M_FORBIDDEN", wrong
        await stranger.close()

        # Logging out kills the token.
        old_token = alice.access_token
        await alice.logout()
        status, body = await asyncio.to_thread(
            raw_json, url, "GET", "/_matrix/client/v3/account/whoami", None, old_token
        )
        assert status == 401 and body["errcode"] == "M_UNKNOWN_TOKEN", body
        figures["flow_s"] = time.monotonic() - started
        return figures
    finally:
        await alice.close()
        await bob.close()


def test_nio_end_to_end(homeserver: Any, record_property: Any) -> None:
    figures = asyncio.run(nio_flow(homeserver.url))
    engine = "postgres" if "dbname=" in homeserver.database else "sqlite"
    latencies_ms = [round(x * 1000) for x in figures["wake_latencies_s"]]
    print(f"\nnio flow on {engine}: {figures['flow_s']:.2f}s, wake latencies {latencies_ms} ms")
    record_property("nio_flow_s", figures["flow_s"])


def test_registration_asks_for_dummy_auth_first(homeserver: Any) -> None:
    name = unique("uia")
    status, body = raw_json(
        homeserver.url, "POST", "/_matrix/client/v3/register", {"username": name, "password": "x"}
    )
    assert status == 401
    assert body["flows"] == [{"stages": ["m.login.dummy"]}] and body["session"]
    status, body = raw_json(
        homeserver.url,
        "POST",
        "/_matrix/client/v3/register",
        {"username": name, "password": "x", "auth": {"type": "m.login.dummy", "session": body["session"]}},
    )
    assert status == 200 and body["user_id"] == f"@{name}:localhost" and body["access_token"]
    status, body = raw_json(
        homeserver.url,
        "POST",
        "/_matrix/client/v3/register",
        {"username": name, "password": "x", "auth": {"type": "m.login.dummy"}},
    )
    assert (status, body["errcode"]) == (400, "M_USER_IN_USE")


def test_unknown_endpoint_and_bad_token(homeserver: Any) -> None:
    status, body = raw_json(homeserver.url, "GET", "/_matrix/client/v3/no/such/thing")
    assert (status, body["errcode"]) == (404, "M_UNRECOGNIZED")
    status, body = raw_json(homeserver.url, "GET", "/_matrix/client/v3/account/whoami", token="bogus")
    assert (status, body["errcode"]) == (401, "M_UNKNOWN_TOKEN")
    status, body = raw_json(homeserver.url, "GET", "/_matrix/client/v3/sync")
    assert (status, body["errcode"]) == (401, "M_MISSING_TOKEN")
