"""Every membership transition and power-level check the example implements, as a table,
on SQLite and on PostgreSQL (in-process, Werkzeug's test Client).

Each row starts from a fresh room of the same cast:

* alice: the creator (100); mod: 50; bob: 0, joined;
* dave: invited; eve: banned; frank: joined once, then left; carol: never there.

A row is one request by one of them and the status it must get. A refused
request must leave the room exactly as it was (its events and its state); an
allowed membership change must leave the target with the membership it asked for.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from werkzeug.test import Client

from examples.homeserver.app import create_app

from .conftest import PostgresServer
from .test_app import User

CAST = ("alice", "mod", "bob", "carol", "dave", "eve", "frank")


@dataclass(frozen=True)
class Case:
    name: str
    actor: str
    action: str  # join leave invite kick ban unban member send state power redact
    target: str | None = None
    status: int = 200
    preset: str = "public_chat"
    # Changes alice makes to the power levels before the row's request.
    levels: dict[str, Any] = field(default_factory=dict)
    # member: the membership; state/send: the event type; power: the changes; redact: whose message.
    arg: Any = None
    state_key: str = ""
    errcode: str = "M_FORBIDDEN"


PRIVATE = "private_chat"  # join rule invite, invite level 0
MOD_SENDS_LEVELS = {"events": {"m.room.power_levels": 50}}

CASES = [
    # -- join ---------------------------------------------------------------------------------
    Case("join public room", "carol", "join"),
    Case("join invite-only room uninvited", "carol", "join", status=403, preset=PRIVATE),
    Case("join invite-only room when invited", "dave", "join", preset=PRIVATE),
    Case("join public room when invited", "dave", "join"),
    Case("join when banned", "eve", "join", status=403),
    Case("rejoin public room after leaving", "frank", "join"),
    Case("rejoin invite-only room after leaving", "frank", "join", status=403, preset=PRIVATE),
    Case("join again when joined", "bob", "join"),
    Case("force another user to join", "bob", "member", "carol", 403, arg="join"),
    Case("knock (not implemented)", "carol", "member", "carol", 403, preset=PRIVATE, arg="knock"),
    # -- invite ---------------------------------------------------------------------------------
    Case("invite at invite level 0", "bob", "invite", "carol", preset=PRIVATE),
    Case("invite below invite level 50", "bob", "invite", "carol", 403),
    Case("invite at invite level 50", "mod", "invite", "carol"),
    Case("invite through the state API", "mod", "member", "carol", arg="invite"),
    Case("invite by an outsider", "carol", "invite", "frank", 403),
    Case("invite by an invitee", "dave", "invite", "carol", 403),
    Case("invite a joined user", "alice", "invite", "bob", 403),
    Case("invite a banned user", "alice", "invite", "eve", 403),
    Case("invite a user who left", "alice", "invite", "frank"),
    Case("invite again an invited user", "alice", "invite", "dave"),
    # -- leave ----------------------------------------------------------------------------------
    Case("leave when joined", "bob", "leave"),
    Case("reject an invite", "dave", "leave"),
    Case("leave when never there", "carol", "leave", status=403),
    Case("leave when banned", "eve", "leave", status=403),
    Case("leave twice", "frank", "leave", status=403),
    # -- kick -----------------------------------------------------------------------------------
    Case("kick at kick level", "mod", "kick", "bob"),
    Case("kick below kick level", "bob", "kick", "mod", 403),
    Case("kick a higher level", "mod", "kick", "alice", 403),
    Case("kick an equal level", "mod", "kick", "bob", 403, levels={"users": {"bob": 50}}),
    Case("kick by an outsider through the state API", "carol", "member", "bob", 403, arg="leave"),
    Case("kick by a member through the state API", "bob", "member", "mod", 403, arg="leave"),
    Case("kick through the state API", "alice", "member", "mod", arg="leave"),
    Case("revoke an invite", "mod", "kick", "dave"),
    Case("kick a user not in the room", "alice", "kick", "carol", 403),
    Case("kick with kick level lowered", "bob", "kick", "frank", 403, levels={"kick": 0}),
    Case("kick a joined user with kick level lowered", "bob", "kick", "carol", 403, levels={"kick": 0}),
    # -- ban ------------------------------------------------------------------------------------
    Case("ban at ban level", "mod", "ban", "bob"),
    Case("ban below ban level", "bob", "ban", "carol", 403),
    Case("ban a higher level", "mod", "ban", "alice", 403),
    Case("ban a user never there", "alice", "ban", "carol"),
    Case("ban an invitee", "mod", "ban", "dave"),
    Case("ban by an outsider", "carol", "ban", "bob", 403),
    Case("ban through the state API", "mod", "member", "bob", arg="ban"),
    Case("ban with ban level raised", "mod", "ban", "bob", 403, levels={"ban": 60}),
    # -- unban ----------------------------------------------------------------------------------
    Case("unban at ban level", "mod", "unban", "eve"),
    Case("unban below ban level", "bob", "unban", "eve", 403),
    Case("unban below ban level with kick level 0", "bob", "unban", "eve", 403, levels={"kick": 0}),
    Case("unban through the state API", "mod", "member", "eve", arg="leave"),
    Case("unban a user not banned", "alice", "unban", "bob", 403, errcode="M_BAD_STATE"),
    Case("invite a banned user after unban", "alice", "invite", "eve", 403),
    # -- sending (events_default, events) --------------------------------------------------------
    Case("send a message", "bob", "send", arg="m.room.message"),
    Case("send a message as an outsider", "carol", "send", status=403, arg="m.room.message"),
    Case("send a message as an invitee", "dave", "send", status=403, arg="m.room.message"),
    Case("send a message as a banned user", "eve", "send", status=403, arg="m.room.message"),
    Case("send below events_default", "bob", "send", status=403, levels={"events_default": 10}, arg="m.x"),
    Case("send below an events entry", "bob", "send", status=403, levels={"events": {"m.x": 10}}, arg="m.x"),
    Case("send at an events entry", "mod", "send", levels={"events": {"m.x": 50}}, arg="m.x"),
    Case("send m.room.member without a state key", "bob", "send", status=403, arg="m.room.member"),
    # -- state (state_default, events, state keys) ----------------------------------------------
    Case("state below state_default", "bob", "state", status=403, arg="m.room.topic"),
    Case("state at state_default", "mod", "state", arg="m.room.topic"),
    Case("state below an events entry", "mod", "state", status=403, arg="m.room.history_visibility"),
    Case("state at an events entry", "mod", "state", arg="m.room.name"),
    Case("custom state below state_default", "bob", "state", status=403, arg="org.example.x"),
    Case(
        "state allowed by an events entry",
        "bob",
        "state",
        levels={"events": {"m.room.topic": 0}},
        arg="m.room.topic",
    ),
    Case("state by an outsider", "carol", "state", status=403, arg="m.room.topic"),
    Case("state with another user's key", "alice", "state", status=403, arg="org.example.x", state_key="bob"),
    Case("state with one's own user key", "mod", "state", arg="org.example.x", state_key="mod"),
    Case("m.room.create again", "alice", "state", status=403, arg="m.room.create"),
    # -- power levels -------------------------------------------------------------------------
    Case("power levels below their events entry", "mod", "power", status=403, arg={"kick": 10}),
    Case("raise one's own level", "bob", "power", status=403, arg={"users": {"bob": 100}}),
    Case(
        "raise another to one's own level",
        "mod",
        "power",
        levels=MOD_SENDS_LEVELS,
        arg={"users": {"bob": 50}},
    ),
    Case(
        "raise another above one's own",
        "mod",
        "power",
        "",
        403,
        levels=MOD_SENDS_LEVELS,
        arg={"users": {"bob": 51}},
    ),
    Case("raise oneself", "mod", "power", "", 403, levels=MOD_SENDS_LEVELS, arg={"users": {"mod": 51}}),
    Case("lower oneself", "mod", "power", levels=MOD_SENDS_LEVELS, arg={"users": {"mod": 10}}),
    Case(
        "lower a higher level", "mod", "power", "", 403, levels=MOD_SENDS_LEVELS, arg={"users": {"alice": 0}}
    ),
    Case(
        "lower an equal level",
        "mod",
        "power",
        status=403,
        levels={**MOD_SENDS_LEVELS, "users": {"bob": 50}},
        arg={"users": {"bob": 0}},
    ),
    Case(
        "remove an equal level",
        "mod",
        "power",
        status=403,
        levels={**MOD_SENDS_LEVELS, "users": {"bob": 50}},
        arg={"users": {"bob": None}},
    ),
    Case("remove a lower level", "alice", "power", arg={"users": {"mod": None}}),
    Case("set a level to one's own", "mod", "power", levels=MOD_SENDS_LEVELS, arg={"kick": 50}),
    Case("set a level above one's own", "mod", "power", "", 403, levels=MOD_SENDS_LEVELS, arg={"ban": 51}),
    Case(
        "change a level above one's own",
        "mod",
        "power",
        "",
        403,
        levels={**MOD_SENDS_LEVELS, "ban": 70},
        arg={"ban": 10},
    ),
    Case(
        "raise users_default above one's own",
        "mod",
        "power",
        "",
        403,
        levels=MOD_SENDS_LEVELS,
        arg={"users_default": 60},
    ),
    Case("add an events entry", "mod", "power", levels=MOD_SENDS_LEVELS, arg={"events": {"m.x": 40}}),
    Case(
        "add an events entry above one's own",
        "mod",
        "power",
        "",
        403,
        levels=MOD_SENDS_LEVELS,
        arg={"events": {"m.x": 60}},
    ),
    Case(
        "change an events entry above one's own",
        "mod",
        "power",
        status=403,
        levels=MOD_SENDS_LEVELS,
        arg={"events": {"m.room.history_visibility": 50}},
    ),
    Case(
        "change a notifications entry above one's own",
        "mod",
        "power",
        "",
        403,
        levels={**MOD_SENDS_LEVELS, "notifications": {"room": 70}},
        arg={"notifications": {"room": 0}},
    ),
    Case(
        "a level that is not an integer", "alice", "power", "", 400, arg={"ban": "50"}, errcode="M_BAD_JSON"
    ),
    Case(
        "a users key that is not a user id",
        "alice",
        "power",
        "",
        400,
        arg={"users": {"nobody": 1}},
        errcode="M_BAD_JSON",
    ),
    Case("power levels by an outsider", "carol", "power", status=403, arg={"kick": 10}),
    # -- redaction ------------------------------------------------------------------------------
    Case("redact one's own message", "bob", "redact", arg="bob"),
    Case("redact another's message below redact level", "bob", "redact", status=403, arg="alice"),
    Case("redact another's message at redact level", "mod", "redact", arg="bob"),
    Case("redact as an outsider", "carol", "redact", status=403, arg="carol-none"),
    Case("redact the create event", "alice", "redact", status=403, arg="create"),
]


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def cast(request: pytest.FixtureRequest) -> Iterator[dict[str, User]]:
    database = ":memory:"
    if request.param == "postgres":
        pg: PostgresServer = request.getfixturevalue("postgres")
        database = pg.create_database("hs_auth_table")
    app = create_app(database=database, bcrypt_rounds=4, rc_message=(1000.0, 1000))
    client = Client(app)
    try:
        yield {name: User(client, name) for name in CAST}
    finally:
        app.homeserver.close()  # type: ignore[attr-defined]


def resolve(users: dict[str, User], value: Any) -> Any:
    """Names of the cast in power-level maps become their user ids; None removes an entry."""
    if isinstance(value, dict):
        return {users[k].user_id if k in users else k: resolve(users, v) for k, v in value.items()}
    return value


def merged(levels: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    result = dict(levels)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            inner = {**result[key], **value}
            result[key] = {k: v for k, v in inner.items() if v is not None}
        else:
            result[key] = value
    return result


def set_levels(alice: User, room_id: str, changes: dict[str, Any]) -> None:
    levels = alice.call("GET", f"/rooms/{room_id}/state/m.room.power_levels")
    alice.call("PUT", f"/rooms/{room_id}/state/m.room.power_levels", merged(levels, changes))


def fresh_room(users: dict[str, User], case: Case) -> tuple[str, dict[str, str]]:
    alice = users["alice"]
    room_id: str = alice.call("POST", "/createRoom", {"preset": case.preset})["room_id"]

    def member(name: str, action: str, target: str | None = None) -> None:
        body = {"user_id": users[target].user_id} if target else {}
        users[name if action in ("join", "leave") else "alice"].call(
            "POST", f"/rooms/{room_id}/{action}", body
        )

    set_levels(alice, room_id, {"users": {users["mod"].user_id: 50}})
    for name in ("mod", "bob", "eve", "frank"):
        if case.preset == PRIVATE:
            member("alice", "invite", name)
        member(name, "join")
    member("alice", "invite", "dave")
    member("alice", "ban", "eve")
    member("frank", "leave")
    messages = {
        name: users[name].call(
            "PUT",
            f"/rooms/{room_id}/send/m.room.message/{case.name}-{name}",
            {"msgtype": "m.text", "body": name},
        )["event_id"]
        for name in ("alice", "bob")
    }
    messages["create"] = alice.call("GET", f"/rooms/{room_id}/state/m.room.create?format=event")["event_id"]
    messages["carol-none"] = messages["alice"]
    if case.levels:
        set_levels(alice, room_id, resolve(users, case.levels))
    return room_id, messages


def snapshot(alice: User, room_id: str) -> tuple[list[Any], list[Any]]:
    events = alice.call("GET", f"/rooms/{room_id}/messages?dir=b&limit=1000")["chunk"]
    state = alice.call("GET", f"/rooms/{room_id}/state")
    return events, sorted(state, key=lambda event: (event["type"], event["state_key"]))


def membership(alice: User, room_id: str, user_id: str) -> str | None:
    state = {(e["type"], e["state_key"]): e["content"] for e in alice.call("GET", f"/rooms/{room_id}/state")}
    found: str | None = state.get(("m.room.member", user_id), {}).get("membership")
    return found


EXPECTED_MEMBERSHIP = {
    "join": "join",
    "leave": "leave",
    "invite": "invite",
    "kick": "leave",
    "ban": "ban",
    "unban": "leave",
}


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_authorization_table(cast: dict[str, User], case: Case) -> None:
    users = cast
    alice, actor = users["alice"], users[case.actor]
    room_id, messages = fresh_room(users, case)
    before = snapshot(alice, room_id)
    target = users[case.target].user_id if case.target else actor.user_id
    path = f"/rooms/{room_id}"
    if case.action in ("join", "leave"):
        answer = actor.call("POST", f"{path}/{case.action}", {}, case.status)
    elif case.action in ("invite", "kick", "ban", "unban"):
        answer = actor.call("POST", f"{path}/{case.action}", {"user_id": target}, case.status)
    elif case.action == "member":
        answer = actor.call(
            "PUT", f"{path}/state/m.room.member/{target}", {"membership": case.arg}, case.status
        )
    elif case.action == "send":
        answer = actor.call("PUT", f"{path}/send/{case.arg}/{case.name}", {"body": "x"}, case.status)
    elif case.action == "state":
        key = users[case.state_key].user_id if case.state_key else ""
        answer = actor.call("PUT", f"{path}/state/{case.arg}/{key}", {"topic": "t", "name": "n"}, case.status)
    elif case.action == "power":
        levels = alice.call("GET", f"{path}/state/m.room.power_levels")
        body = merged(levels, resolve(users, case.arg))
        answer = actor.call("PUT", f"{path}/state/m.room.power_levels", body, case.status)
    else:
        assert case.action == "redact"
        redacts = messages[case.arg]
        answer = actor.call("PUT", f"{path}/redact/{redacts}/{case.name}", {"reason": "r"}, case.status)

    if case.status != 200:
        assert answer["errcode"] == case.errcode, answer
        assert snapshot(alice, room_id) == before, "a refused request changed the room"
        return
    assert "event_id" in answer or answer.get("room_id") == room_id or answer == {}, answer
    events_after, _ = snapshot(alice, room_id)
    assert len(events_after) == len(before[0]) + 1
    if case.action in EXPECTED_MEMBERSHIP:
        assert membership(alice, room_id, target) == EXPECTED_MEMBERSHIP[case.action]
    elif case.action == "member":
        assert membership(alice, room_id, target) == case.arg


def test_no_event_is_checked_against_state_that_a_concurrent_write_replaced(postgres: PostgresServer) -> None:
    """On PostgreSQL (a pool of connections), Bob sends while Alice bans him: every message of his
    that was stored comes before the ban in the room's order, none after it.

    Each write reads the state it is checked against under the writers' lock, in the
    transaction that then stores the event; a check read before a concurrent ban commits
    would let a message in after the ban.
    """
    app = create_app(
        database=postgres.create_database("hs_auth_race"), bcrypt_rounds=4, rc_message=(1e6, 10**6)
    )
    try:
        client = Client(app)
        alice, bob = User(client, "alice"), User(client, "bob")
        for attempt in range(3):
            room_id: str = alice.call("POST", "/createRoom", {"preset": "public_chat"})["room_id"]
            bob.call("POST", f"/rooms/{room_id}/join", {})
            stop = threading.Event()
            sent: list[int] = []

            def spam(
                worker: int, room_id: str = room_id, stop: threading.Event = stop, sent: list[int] = sent
            ) -> None:
                for n in range(400):
                    if stop.is_set():
                        return
                    response = client.put(
                        # (the example scopes txn ids per device, not per room)
                        f"/_matrix/client/v3/rooms/{room_id}/send/m.room.message/{room_id}-{worker}-{n}",
                        json={"body": "x"},
                        headers={"Authorization": f"Bearer {bob.token}"},
                    )
                    if response.status_code == 403:
                        return
                    sent.append(response.status_code)

            threads = [threading.Thread(target=spam, args=(worker,)) for worker in range(6)]
            for thread in threads:
                thread.start()
            deadline = time.monotonic() + 10
            while sent.count(200) < 30 and time.monotonic() < deadline:
                time.sleep(0.01)
            alice.call("POST", f"/rooms/{room_id}/ban", {"user_id": bob.user_id})
            stop.set()
            for thread in threads:
                thread.join(30)
            assert set(sent) == {200}, sent
            chunk = alice.call("GET", f"/rooms/{room_id}/messages?dir=f&limit=1000&from=s0")["chunk"]
            order = [(e["type"], e["sender"], e["content"].get("membership")) for e in chunk]
            ban_at = order.index(("m.room.member", alice.user_id, "ban"))
            after = [event for event in order[ban_at + 1 :] if event[1] == bob.user_id]
            assert after == [], (attempt, len(after))
            assert any(event[1] == bob.user_id and event[0] == "m.room.message" for event in order[:ban_at])
    finally:
        app.homeserver.close()  # type: ignore[attr-defined]
