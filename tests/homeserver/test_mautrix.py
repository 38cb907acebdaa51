"""A second, independent client library: mautrix's client API, a shorter flow.

So the homeserver is not tuned to one client's habits: mautrix builds its
own paths, sends its own bodies and parses the answers with its own types.
Runs on SQLite and on PostgreSQL (the `homeserver` fixture).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import pytest
from mautrix.api import HTTPAPI, Method, Path
from mautrix.client import ClientAPI
from mautrix.errors import MForbidden, MUnknownToken
from mautrix.types import (
    EventType,
    MessageType,
    PaginationDirection,
    RoomCreatePreset,
    TextMessageEventContent,
    UserID,
)

from ._client_helpers import unique

pytestmark = pytest.mark.timeout(120)

ODD = EventType.find("org.example.odd", t_class=EventType.Class.STATE)


async def registered(session: aiohttp.ClientSession, url: str, name: str) -> ClientAPI:
    api = HTTPAPI(base_url=url, client_session=session)
    body = await api.request(
        Method.POST,
        Path.v3.register,
        {"username": name, "password": "secret", "auth": {"type": "m.login.dummy"}},
    )
    client = ClientAPI(UserID(body["user_id"]), device_id=body["device_id"], api=api)
    # Log in again with the password, as a client on a new device would.
    await client.login(identifier=UserID(body["user_id"]), password="secret", device_name="mautrix")
    assert client.api.token and client.api.token != body["access_token"]
    return client


async def mautrix_flow(url: str) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    started = time.monotonic()
    async with aiohttp.ClientSession() as session:
        alice = await registered(session, url, unique("malice"))
        bob = await registered(session, url, unique("mbob"))
        assert (await alice.whoami()).user_id == alice.mxid

        alias = unique("mroom")
        room_id = await alice.create_room(
            alias_localpart=alias,
            preset=RoomCreatePreset.PUBLIC,
            name="mautrix room",
            topic="second client",
            initial_state=[{"type": "org.example.odd", "state_key": "seed", "content": {"v": 0}}],
        )
        assert await bob.join_room(f"#{alias}:localhost") == room_id
        assert set(await bob.get_joined_rooms()) >= {room_id}
        members = await alice.get_joined_members(room_id)
        assert set(members) == {alice.mxid, bob.mxid}

        # A parked sync of bob's wakes for alice's message.
        since = (await bob.sync(timeout=0))["next_batch"]
        poll = asyncio.create_task(bob.sync(since=since, timeout=30_000))
        await asyncio.sleep(0.3)
        assert not poll.done()
        sent_at = time.monotonic()
        event_id = await alice.send_message(
            room_id, TextMessageEventContent(MessageType.TEXT, "from mautrix")
        )
        woke = await asyncio.wait_for(poll, 10)
        figures["wake_latency_s"] = time.monotonic() - sent_at
        timeline = woke["rooms"]["join"][room_id]["timeline"]["events"]
        assert [(e["event_id"], e["content"]["body"]) for e in timeline] == [(event_id, "from mautrix")]
        assert figures["wake_latency_s"] < 0.5

        # State with an odd key, read back by the other user.
        key = "dir/sub%2F100% ü"
        await alice.send_state_event(room_id, ODD, {"v": 1}, state_key=key)
        assert (await bob.get_state_event(room_id, ODD, key)).serialize() == {"v": 1}
        state = await bob.get_state(room_id)
        assert {(e.type.t, e.state_key) for e in state} >= {
            ("org.example.odd", key),
            ("org.example.odd", "seed"),
        }

        # History back to the room's creation.
        seen: list[str] = []
        token = None
        for _ in range(20):
            page = await bob.get_messages(room_id, PaginationDirection.BACKWARD, from_token=token, limit=4)
            seen += [e.type.t for e in page.events]
            if not page.end or not page.events:
                break
            token = page.end
        assert seen[-1] == "m.room.create" and "m.room.message" in seen

        # Leaving ends the right to send; logging out ends the token.
        await bob.leave_room(room_id)
        with pytest.raises(MForbidden):
            await bob.send_text(room_id, "not a member any more")
        old_token = alice.api.token
        await alice.logout()
        alice.api.token = old_token  # mautrix forgets it; the server must have too
        with pytest.raises(MUnknownToken):
            await alice.whoami()
    figures["flow_s"] = time.monotonic() - started
    return figures


def test_mautrix_flow(homeserver: Any) -> None:
    figures = asyncio.run(mautrix_flow(homeserver.url))
    engine = "postgres" if "dbname=" in homeserver.database else "sqlite"
    print(
        f"\nmautrix flow on {engine}: {figures['flow_s']:.2f}s, "
        f"wake latency {figures['wake_latency_s'] * 1000:.0f} ms"
    )
