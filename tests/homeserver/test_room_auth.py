"""The Matrix authorization rules and private data, in-process (Werkzeug's test Client).

Each test here reproduces a hole of the example as it was (a write anyone
could make, a receipt that reached everyone) and checks that the write is
refused with 403 M_FORBIDDEN and leaves nothing behind.
"""

from __future__ import annotations

import threading

from werkzeug.test import Client

from .test_app import User, client, room_with, send

__all__ = ["client"]  # the fixture, imported for the tests below


def events_of(user: User, room_id: str) -> list[dict[str, object]]:
    chunk: list[dict[str, object]] = user.call("GET", f"/rooms/{room_id}/messages?dir=b&limit=1000")["chunk"]
    return chunk


def test_an_outsider_cannot_kick_a_member_through_the_state_api(client: Client) -> None:
    alice, bob, carol = User(client, "alice"), User(client, "bob"), User(client, "carol")
    room_id = room_with(alice, bob)
    before = events_of(alice, room_id)
    refused = carol.call(
        "PUT", f"/rooms/{room_id}/state/m.room.member/{bob.user_id}", {"membership": "leave"}, 403
    )
    assert refused["errcode"] == "M_FORBIDDEN"
    assert events_of(alice, room_id) == before
    assert bob.user_id in alice.call("GET", f"/rooms/{room_id}/joined_members")["joined"]
    # Nor can a member force another user in.
    forced = bob.call(
        "PUT", f"/rooms/{room_id}/state/m.room.member/{carol.user_id}", {"membership": "join"}, 403
    )
    assert forced["errcode"] == "M_FORBIDDEN"
    assert events_of(alice, room_id) == before


def test_a_member_cannot_raise_his_own_power_level(client: Client) -> None:
    alice, bob = User(client, "alice"), User(client, "bob")
    room_id = room_with(alice, bob)
    levels = alice.call("GET", f"/rooms/{room_id}/state/m.room.power_levels")
    before = events_of(alice, room_id)
    grab = {**levels, "users": {**levels["users"], bob.user_id: 100}}
    refused = bob.call("PUT", f"/rooms/{room_id}/state/m.room.power_levels", grab, 403)
    assert refused["errcode"] == "M_FORBIDDEN"
    assert events_of(alice, room_id) == before
    assert alice.call("GET", f"/rooms/{room_id}/state/m.room.power_levels") == levels


def test_a_member_without_power_cannot_send_state(client: Client) -> None:
    alice, bob = User(client, "alice"), User(client, "bob")
    room_id = room_with(alice, bob)
    before = events_of(alice, room_id)
    for event_type in ("m.room.name", "m.room.topic", "org.example.anything"):
        refused = bob.call("PUT", f"/rooms/{room_id}/state/{event_type}", {"name": "mine", "topic": "x"}, 403)
        assert refused["errcode"] == "M_FORBIDDEN", event_type
    assert events_of(alice, room_id) == before
    # The creator (100) may; a plain message needs only events_default (0).
    alice.call("PUT", f"/rooms/{room_id}/state/m.room.topic", {"topic": "ok"})
    send(bob, room_id, "messages are fine")


def test_private_read_receipts_reach_only_their_owner(client: Client) -> None:
    alice, bob = User(client, "alice"), User(client, "bob")
    room_id = room_with(alice, bob)
    event_id = send(alice, room_id, "read me")
    since = alice.sync()["next_batch"]
    assert bob.sync()["next_batch"] == since  # both read the same range: the shared room cache
    bob.call("POST", f"/rooms/{room_id}/receipt/m.read.private/{event_id}", {})
    # Alice first, so her read fills the cache that Bob's read then hits.
    alice_room = alice.sync(since)["rooms"]["join"].get(room_id, {})
    assert "m.read.private" not in repr(alice_room.get("ephemeral", {}))
    bob_ephemeral = bob.sync(since)["rooms"]["join"][room_id]["ephemeral"]["events"]
    receipts = [e["content"] for e in bob_ephemeral if e["type"] == "m.receipt"]
    assert receipts and receipts[0][event_id]["m.read.private"][bob.user_id]["ts"] > 0
    # Bob's read marker through /read_markers stays his as well; a public one reaches Alice.
    bob.call("POST", f"/rooms/{room_id}/read_markers", {"m.read.private": event_id, "m.read": event_id})
    alice_ephemeral = alice.sync(since)["rooms"]["join"][room_id]["ephemeral"]["events"]
    public = [e["content"] for e in alice_ephemeral if e["type"] == "m.receipt"]
    assert public == [{event_id: {"m.read": {bob.user_id: public[0][event_id]["m.read"][bob.user_id]}}}]
    # A parked poll of Alice's is not answered by Bob's next private receipt.
    since = alice.sync()["next_batch"]
    parked: dict[str, object] = {}
    poll = threading.Thread(target=lambda: parked.update(alice.sync(since, timeout=700)))
    poll.start()
    bob.call("POST", f"/rooms/{room_id}/receipt/m.read.private/{event_id}", {})
    poll.join(5)
    assert parked["rooms"] == {"join": {}, "invite": {}, "leave": {}}
