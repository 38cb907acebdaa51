"""The homeserver in-process (Werkzeug's test Client, SQLite `:memory:`): the
Client-Server API rules the client libraries do not exercise on their own."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from werkzeug.test import Client

from examples.homeserver.app import HomeServer, HomeServerConfig

API = "/_matrix/client/v3"


class User:
    def __init__(self, client: Client, name: str) -> None:
        self.client = client
        response = client.post(
            f"{API}/register", json={"username": name, "password": "pw", "auth": {"type": "m.login.dummy"}}
        )
        assert response.status_code == 200, response.data
        self.user_id: str = response.json["user_id"]  # type: ignore[index]
        self.token: str = response.json["access_token"]  # type: ignore[index]

    def call(self, method: str, path: str, body: Any = None, status: int = 200) -> Any:
        response = self.client.open(
            f"{API}{path}", method=method, json=body, headers={"Authorization": f"Bearer {self.token}"}
        )
        assert response.status_code == status, (method, path, response.status_code, response.data)
        return response.json

    def sync(self, since: str | None = None, timeout: int = 0, **params: str) -> Any:
        query = "&".join(f"{k}={quote(v)}" for k, v in {**params, "timeout": str(timeout)}.items())
        if since is not None:
            query += f"&since={since}"
        return self.call("GET", f"/sync?{query}")


@pytest.fixture
def client() -> Iterator[Client]:
    hs = HomeServer(
        HomeServerConfig(
            database=":memory:", rc_login_failed=(0.01, 2), rc_message=(1000.0, 1000), bcrypt_rounds=4
        )
    )
    client = Client(hs.client_site)
    client.homeserver = hs  # type: ignore[attr-defined]
    yield client
    hs.close()


def room_with(alice: User, *others: User, preset: str = "public_chat") -> str:
    room_id: str = alice.call("POST", "/createRoom", {"preset": preset})["room_id"]
    for other in others:
        other.call("POST", f"/rooms/{room_id}/join", {})
    return room_id


def send(user: User, room_id: str, body: str, txn: str | None = None) -> str:
    txn = txn or f"t{time.monotonic_ns()}"
    event_id: str = user.call(
        "PUT", f"/rooms/{room_id}/send/m.room.message/{txn}", {"msgtype": "m.text", "body": body}
    )["event_id"]
    return event_id


def test_login_errors_and_rate_limit(client: Client) -> None:
    User(client, "alice")
    login = {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "alice"}}
    ok = client.post(f"{API}/login", json={**login, "password": "pw"})
    assert ok.status_code == 200 and ok.json["user_id"] == "@alice:localhost"  # type: ignore[index]
    assert client.get(f"{API}/login").json == {"flows": [{"type": "m.login.password"}]}
    for _ in range(2):
        wrong = client.post(f"{API}/login", json={**login, "password": "nope"})
        assert (wrong.status_code, wrong.json["errcode"]) == (403, "M_FORBIDDEN")  # type: ignore[index]
    limited = client.post(f"{API}/login", json={**login, "password": "nope"})
    assert limited.status_code == 429 and limited.json["errcode"] == "M_LIMIT_EXCEEDED"  # type: ignore[index]
    assert int(limited.headers["Retry-After"]) > 0
    unknown = client.post(
        f"{API}/login", json={**login, "identifier": {"type": "m.id.user", "user": "bob"}, "password": "x"}
    )
    assert unknown.status_code == 403
    bad = client.post(f"{API}/login", data=b"{not json", content_type="application/json")
    assert (bad.status_code, bad.json["errcode"]) == (400, "M_NOT_JSON")  # type: ignore[index]


def test_registration_rules(client: Client) -> None:
    for name, code in [
        ("UPPER", "M_INVALID_USERNAME"),
        ("sp ace", "M_INVALID_USERNAME"),
        ("", "M_INVALID_USERNAME"),
    ]:
        response = client.post(
            f"{API}/register", json={"username": name, "password": "pw", "auth": {"type": "m.login.dummy"}}
        )
        assert (response.status_code, response.json["errcode"]) == (400, code), name  # type: ignore[index]
    assert client.get(f"{API}/register/available?username=carol").json == {"available": True}
    User(client, "carol")
    taken = client.get(f"{API}/register/available?username=carol")
    assert taken.json["errcode"] == "M_USER_IN_USE"  # type: ignore[index]
    guest = client.post(f"{API}/register?kind=guest", json={})
    assert guest.json["errcode"] == "M_GUEST_ACCESS_FORBIDDEN"  # type: ignore[index]


def test_membership_rules(client: Client) -> None:
    alice, bob, carol = User(client, "alice"), User(client, "bob"), User(client, "carol")
    private = room_with(alice, preset="private_chat")
    assert bob.call("POST", f"/join/{private}", {}, status=403)["errcode"] == "M_FORBIDDEN"
    assert bob.call("PUT", f"/rooms/{private}/send/m.room.message/x", {"body": "hi"}, status=403)[
        "errcode"
    ] == ("M_FORBIDDEN")
    assert bob.call("GET", f"/rooms/{private}/state", status=403)["errcode"] == "M_FORBIDDEN"
    alice.call("POST", f"/rooms/{private}/invite", {"user_id": bob.user_id})
    invited = bob.sync()["rooms"]["invite"][private]["invite_state"]["events"]
    assert {(e["type"], e["state_key"]) for e in invited} >= {
        ("m.room.create", ""),
        ("m.room.member", bob.user_id),
    }
    bob.call("POST", f"/join/{private}", {})
    assert set(alice.call("GET", f"/rooms/{private}/joined_members")["joined"]) == {
        alice.user_id,
        bob.user_id,
    }
    assert carol.call("POST", f"/rooms/{private}/invite", {"user_id": carol.user_id}, status=403)
    assert alice.call("POST", f"/rooms/{private}/invite", {"user_id": "@nobody:localhost"}, status=404)
    assert alice.call("POST", "/join/!nope:localhost", {}, status=404)["errcode"] == "M_NOT_FOUND"
    assert alice.call("POST", "/join/%23nope:localhost", {}, status=404)["errcode"] == "M_NOT_FOUND"
    assert alice.call("POST", "/join/nope", {}, status=400)["errcode"] == "M_INVALID_PARAM"
    # Leaving shows up in the leaver's next sync, under rooms.leave.
    since = bob.sync()["next_batch"]
    bob.call("POST", f"/rooms/{private}/leave", {})
    left = bob.sync(since)["rooms"]["leave"][private]["timeline"]["events"]
    assert left[-1]["content"] == {"membership": "leave"}
    assert bob.call("POST", f"/rooms/{private}/leave", {}, status=403)


def test_create_room_options(client: Client) -> None:
    alice = User(client, "alice")
    created = alice.call(
        "POST",
        "/createRoom",
        {
            "name": "N",
            "topic": "T",
            "room_alias_name": "here",
            "initial_state": [{"type": "m.room.guest_access", "content": {"guest_access": "forbidden"}}],
        },
    )
    assert created["room_alias"] == "#here:localhost"
    room_id = created["room_id"]
    state = {(e["type"], e["state_key"]): e["content"] for e in alice.call("GET", f"/rooms/{room_id}/state")}
    assert state[("m.room.name", "")] == {"name": "N"}
    assert state[("m.room.topic", "")] == {"topic": "T"}
    assert state[("m.room.join_rules", "")] == {"join_rule": "invite"}  # private_chat by default
    assert state[("m.room.guest_access", "")] == {"guest_access": "forbidden"}
    assert state[("m.room.canonical_alias", "")] == {"alias": "#here:localhost"}
    again = alice.call("POST", "/createRoom", {"room_alias_name": "here"}, status=400)
    assert again["errcode"] == "M_ROOM_IN_USE"
    assert alice.call("POST", "/createRoom", {"preset": "nope"}, status=400)["errcode"] == "M_INVALID_PARAM"
    assert alice.call("POST", "/createRoom", {"initial_state": [1]}, status=400)["errcode"] == "M_BAD_JSON"
    resolved = alice.call("GET", "/directory/room/%23here:localhost")
    assert resolved["room_id"] == room_id


def test_sync_limited_timeline_and_prev_batch(client: Client) -> None:
    alice = User(client, "alice")
    room_id = room_with(alice)
    since = alice.sync()["next_batch"]
    sent = [send(alice, room_id, f"m{i}") for i in range(15)]
    room = alice.sync(since, filter='{"room":{"timeline":{"limit":5}}}')["rooms"]["join"][room_id]
    assert room["timeline"]["limited"] is True
    assert [e["event_id"] for e in room["timeline"]["events"]] == sent[-5:]
    # prev_batch pages back over exactly what the limited timeline skipped.
    page = alice.call(
        "GET", f"/rooms/{room_id}/messages?dir=b&limit=10&from={room['timeline']['prev_batch']}"
    )
    assert [e["event_id"] for e in page["chunk"]] == list(reversed(sent[:10]))
    # A filter uploaded once and used by id does the same.
    filter_id = alice.call("POST", f"/user/{alice.user_id}/filter", {"room": {"timeline": {"limit": 2}}})[
        "filter_id"
    ]
    room = alice.sync(since, filter=filter_id)["rooms"]["join"][room_id]
    assert len(room["timeline"]["events"]) == 2
    assert alice.call("GET", f"/user/{alice.user_id}/filter/{filter_id}") == {
        "room": {"timeline": {"limit": 2}}
    }
    # The sender's own device sees its transaction id.
    assert room["timeline"]["events"][-1]["unsigned"]["transaction_id"].startswith("t")
    assert alice.call("GET", "/sync?since=bogus", status=400)["errcode"] == "M_INVALID_PARAM"


def test_messages_paging_both_ways(client: Client) -> None:
    alice = User(client, "alice")
    room_id = room_with(alice)
    for i in range(7):
        send(alice, room_id, f"m{i}")
    back: list[dict[str, Any]] = []
    token = ""
    while True:
        page = alice.call("GET", f"/rooms/{room_id}/messages?dir=b&limit=3{token}")
        back += page["chunk"]
        if "end" not in page:
            break
        token = f"&from={page['end']}"
    assert back[-1]["type"] == "m.room.create" and back[0]["content"]["body"] == "m6"
    forward = alice.call("GET", f"/rooms/{room_id}/messages?dir=f&limit=100&from=s0")["chunk"]
    assert [e["event_id"] for e in forward] == [e["event_id"] for e in reversed(back)]
    # `to` bounds a page.
    bounded = alice.call("GET", f"/rooms/{room_id}/messages?dir=f&from=s0&to={'s' + str(3)}&limit=100")[
        "chunk"
    ]
    assert len(bounded) <= 3
    assert alice.call("GET", f"/rooms/{room_id}/messages?dir=x", status=400)["errcode"] == "M_INVALID_PARAM"


def test_typing_and_receipts_reach_sync(client: Client) -> None:
    alice, bob = User(client, "alice"), User(client, "bob")
    room_id = room_with(alice, bob)
    event_id = send(alice, room_id, "read me")
    since = bob.sync()["next_batch"]
    alice.call("PUT", f"/rooms/{room_id}/typing/{alice.user_id}", {"typing": True, "timeout": 10000})
    bob.call("POST", f"/rooms/{room_id}/receipt/m.read/{event_id}", {})
    ephemeral = bob.sync(since)["rooms"]["join"][room_id]["ephemeral"]["events"]
    by_type = {e["type"]: e["content"] for e in ephemeral}
    assert by_type["m.typing"] == {"user_ids": [alice.user_id]}
    assert by_type["m.receipt"][event_id]["m.read"][bob.user_id]["ts"] > 0
    since = bob.sync()["next_batch"]
    alice.call("PUT", f"/rooms/{room_id}/typing/{alice.user_id}", {"typing": False})
    ephemeral = bob.sync(since)["rooms"]["join"][room_id]["ephemeral"]["events"]
    assert ephemeral == [{"type": "m.typing", "content": {"user_ids": []}}]
    assert bob.call("PUT", f"/rooms/{room_id}/typing/{alice.user_id}", {"typing": True}, status=403)
    bob.call("POST", f"/rooms/{room_id}/read_markers", {"m.fully_read": event_id, "m.read": event_id})
    assert bob.call("GET", f"/user/{bob.user_id}/rooms/{room_id}/account_data/m.fully_read") == {
        "event_id": event_id
    }


def test_account_data_wakes_sync_and_small_endpoints(client: Client) -> None:
    alice = User(client, "alice")
    since = alice.sync()["next_batch"]
    alice.call("PUT", f"/user/{alice.user_id}/account_data/org.example.x", {"a": 1})
    assert alice.sync(since)["account_data"]["events"] == [{"type": "org.example.x", "content": {"a": 1}}]
    assert alice.call("GET", f"/user/{alice.user_id}/account_data/org.example.x") == {"a": 1}
    assert (
        alice.call("GET", f"/user/{alice.user_id}/account_data/nope", status=404)["errcode"] == "M_NOT_FOUND"
    )
    assert "m.room_versions" in alice.call("GET", "/capabilities")["capabilities"]
    assert set(alice.call("GET", "/pushrules/")["global"]) == {
        "override",
        "content",
        "room",
        "sender",
        "underride",
    }
    alice.call("PUT", f"/presence/{alice.user_id}/status", {"presence": "online"})
    alice.call("PUT", f"/profile/{alice.user_id}/displayname", {"displayname": "Alice"})
    assert alice.call("GET", f"/profile/{alice.user_id}") == {"displayname": "Alice"}
    assert alice.call("GET", "/account/whoami")["user_id"] == alice.user_id


def test_sync_long_poll_wakes_in_process(client: Client) -> None:
    """On threads (the test client), a parked /sync wakes on a send from another thread."""
    alice, bob = User(client, "alice"), User(client, "bob")
    room_id = room_with(alice, bob)
    since = bob.sync()["next_batch"]
    result: dict[str, Any] = {}

    def poll() -> None:
        result["sync"] = bob.sync(since, timeout=10_000)
        result["at"] = time.monotonic()

    thread = threading.Thread(target=poll)
    thread.start()
    time.sleep(0.3)
    assert "sync" not in result
    sent_at = time.monotonic()
    send(alice, room_id, "wake up")
    thread.join(5)
    events = result["sync"]["rooms"]["join"][room_id]["timeline"]["events"]
    assert [e["content"]["body"] for e in events] == ["wake up"]
    assert result["at"] - sent_at < 0.5
    # A timeout returns normally with nothing in it.
    started = time.monotonic()
    empty = bob.sync(result["sync"]["next_batch"], timeout=300)
    assert empty["rooms"]["join"] == {} and time.monotonic() - started >= 0.29


def test_retried_transaction_after_the_cache_is_gone(client: Client) -> None:
    """A retry that misses the in-memory cache (another worker, a restart) still gets the stored event."""
    alice = User(client, "alice")
    room_id = room_with(alice)
    first = send(alice, room_id, "once", txn="same")
    client.homeserver.txns.transactions.clear()  # type: ignore[attr-defined]
    assert send(alice, room_id, "once", txn="same") == first
    chunk = alice.call("GET", f"/rooms/{room_id}/messages?dir=b&limit=100")["chunk"]
    assert [e["event_id"] for e in chunk if e["type"] == "m.room.message"] == [first]
