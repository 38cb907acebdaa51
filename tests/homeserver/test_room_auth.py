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


def test_redaction_strips_the_event_for_messages_sync_and_event(client: Client) -> None:
    alice, bob = User(client, "alice"), User(client, "bob")
    room_id = room_with(alice, bob)
    since = bob.sync()["next_batch"]
    message = send(bob, room_id, "oops, my password")
    topic = alice.call("PUT", f"/rooms/{room_id}/state/m.room.topic", {"topic": "secret topic"})["event_id"]
    redaction = bob.call("PUT", f"/rooms/{room_id}/redact/{message}/r1", {"reason": "typo"})["event_id"]
    # A retry of the same transaction is the same redaction.
    assert (
        bob.call("PUT", f"/rooms/{room_id}/redact/{message}/r1", {"reason": "typo"})["event_id"] == redaction
    )
    alice.call("PUT", f"/rooms/{room_id}/redact/{topic}/r2", {})
    levels = alice.call("GET", f"/rooms/{room_id}/state/m.room.power_levels?format=event")
    alice.call("PUT", f"/rooms/{room_id}/redact/{levels['event_id']}/r3", {})

    by_id = {
        e["event_id"]: e for e in alice.call("GET", f"/rooms/{room_id}/messages?dir=b&limit=100")["chunk"]
    }
    assert by_id[message]["content"] == {}
    assert by_id[topic]["content"] == {}
    # The redaction algorithm keeps what the authorization rules need ("invite" is not among them in v10).
    kept = by_id[levels["event_id"]]["content"]
    assert kept == {key: value for key, value in levels["content"].items() if key != "invite"}
    assert by_id[redaction]["redacts"] == message
    assert by_id[redaction]["content"] == {"reason": "typo", "redacts": message}
    assert alice.call("GET", f"/rooms/{room_id}/event/{message}")["content"] == {}
    assert alice.call("GET", f"/rooms/{room_id}/state/m.room.topic") == {}
    # /sync, incremental and initial, serves them redacted too.
    for sync in (bob.sync(since), bob.sync()):
        timeline = {e["event_id"]: e for e in sync["rooms"]["join"][room_id]["timeline"]["events"]}
        assert timeline[message]["content"] == {}
    # An event of another room, or none, is not found; the refusal stores nothing.
    other = room_with(alice)
    assert alice.call("PUT", f"/rooms/{other}/redact/{message}/r4", {}, 404)["errcode"] == "M_NOT_FOUND"
    assert alice.call("PUT", f"/rooms/{room_id}/redact/$nope/r5", {}, 404)["errcode"] == "M_NOT_FOUND"
    # An m.room.redaction through /send is a redaction as well (and is checked the same way).
    kept_message = send(alice, room_id, "keep me")
    bob.call("PUT", f"/rooms/{room_id}/send/m.room.redaction/r6", {"redacts": kept_message}, 403)
    assert alice.call("GET", f"/rooms/{room_id}/event/{kept_message}")["content"]["body"] == "keep me"
    alice.call("PUT", f"/rooms/{room_id}/send/m.room.redaction/r7", {"redacts": kept_message})
    assert alice.call("GET", f"/rooms/{room_id}/event/{kept_message}")["content"] == {}
    # /send and /redact are two endpoints: the same transaction id in each makes two events.
    sent = send(bob, room_id, "same id", txn="same")
    redacted = bob.call("PUT", f"/rooms/{room_id}/redact/{sent}/same", {})["event_id"]
    assert redacted != sent
    assert alice.call("GET", f"/rooms/{room_id}/event/{sent}")["content"] == {}


def test_kick_ban_unban_endpoints_keep_the_reason(client: Client) -> None:
    alice, bob = User(client, "alice"), User(client, "bob")
    room_id = room_with(alice, bob)
    since = bob.sync()["next_batch"]
    alice.call("POST", f"/rooms/{room_id}/kick", {"user_id": bob.user_id, "reason": "be nice"})
    left = bob.sync(since)["rooms"]["leave"][room_id]["timeline"]["events"]
    assert left[-1]["content"] == {"membership": "leave", "reason": "be nice"}
    assert left[-1]["sender"] == alice.user_id
    bob.call("POST", f"/rooms/{room_id}/join", {})
    alice.call("POST", f"/rooms/{room_id}/ban", {"user_id": bob.user_id, "reason": "spam"})
    assert bob.call("POST", f"/rooms/{room_id}/join", {}, 403)["errcode"] == "M_FORBIDDEN"
    member = alice.call("GET", f"/rooms/{room_id}/state/m.room.member/{bob.user_id}")
    assert member == {"membership": "ban", "reason": "spam"}
    alice.call("POST", f"/rooms/{room_id}/unban", {"user_id": bob.user_id})
    bob.call("POST", f"/rooms/{room_id}/join", {})
    assert alice.call("POST", f"/rooms/{room_id}/kick", {}, 400)["errcode"] == "M_MISSING_PARAM"
    bad_reason = {"user_id": bob.user_id, "reason": 1}
    assert alice.call("POST", f"/rooms/{room_id}/ban", bad_reason, 400)["errcode"] == "M_BAD_JSON"


def test_create_room_checks_its_initial_events(client: Client) -> None:
    alice, bob = User(client, "alice"), User(client, "bob")
    # The creator's content cannot name another creator.
    room_id = alice.call(
        "POST", "/createRoom", {"creation_content": {"creator": bob.user_id, "m.federate": False}}
    )["room_id"]
    create = alice.call("GET", f"/rooms/{room_id}/state/m.room.create")
    assert create["creator"] == alice.user_id and create["m.federate"] is False
    # initial_state may not hold what the creator could not send: another user's membership.
    joined_before = alice.call("GET", "/joined_rooms")["joined_rooms"]
    forced = {
        "initial_state": [
            {"type": "m.room.member", "state_key": bob.user_id, "content": {"membership": "join"}}
        ]
    }
    assert alice.call("POST", "/createRoom", forced, 403)["errcode"] == "M_FORBIDDEN"
    assert alice.call("GET", "/joined_rooms")["joined_rooms"] == joined_before
    # power_level_content_override and trusted_private_chat's invitees with the creator's level.
    room_id = alice.call(
        "POST",
        "/createRoom",
        {
            "preset": "trusted_private_chat",
            "invite": [bob.user_id],
            "power_level_content_override": {"kick": 70},
        },
    )["room_id"]
    levels = alice.call("GET", f"/rooms/{room_id}/state/m.room.power_levels")
    assert levels["users"] == {alice.user_id: 100, bob.user_id: 100}
    assert (levels["kick"], levels["invite"], levels["events"]["m.room.power_levels"]) == (70, 0, 100)


# -- the two branches together: profiles in member events, unsigned.prev_content --


def test_a_profile_change_is_a_member_event_the_rules_check(client: Client) -> None:
    """A displayname change re-sends the member event of each joined room through the
    rules: a room whose rules refuse it (join rule "private", which the spec reserves
    and the rules refuse a join under) keeps the old event; the others get the new one."""
    alice, bob = User(client, "alice"), User(client, "bob")
    open_room = room_with(alice, bob)
    closed = room_with(alice)
    alice.call("PUT", f"/rooms/{closed}/state/m.room.join_rules", {"join_rule": "private"})
    before = events_of(alice, closed)
    alice.call("PUT", f"/profile/{alice.user_id}/displayname", {"displayname": "Alice A."})
    assert alice.call("GET", f"/profile/{alice.user_id}/displayname") == {"displayname": "Alice A."}
    member = alice.call("GET", f"/rooms/{open_room}/state/m.room.member/{alice.user_id}")
    assert member == {"membership": "join", "displayname": "Alice A."}
    assert events_of(alice, closed) == before
    assert alice.call("GET", f"/rooms/{closed}/state/m.room.member/{alice.user_id}") == {"membership": "join"}


def test_a_redacted_state_event_is_redacted_in_the_next_ones_prev_content(client: Client) -> None:
    """The event that replaced a state event carries its content in `unsigned.prev_content`
    (copied when it was written): a redaction strips that copy too."""
    alice = User(client, "alice")
    room_id = room_with(alice)
    first = alice.call("PUT", f"/rooms/{room_id}/state/m.room.topic", {"topic": "secret"})["event_id"]
    alice.call("PUT", f"/rooms/{room_id}/state/m.room.topic", {"topic": "public"})
    alice.call("PUT", f"/rooms/{room_id}/redact/{first}/r1", {})
    topics = [e for e in events_of(alice, room_id) if e["type"] == "m.room.topic"]
    assert [e["content"] for e in topics] == [{"topic": "public"}, {}]
    unsigned = topics[0]["unsigned"]
    assert isinstance(unsigned, dict)
    assert unsigned["prev_content"] == {} and unsigned["replaces_state"] == first
    assert "secret" not in str(alice.sync())
