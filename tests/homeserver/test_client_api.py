"""What clients expect of the homeserver, in-process (Werkzeug's test Client):
profiles in member events, `unsigned.prev_content`, `/versions`, the spec's
push rules, `/devices`, `/keys/*`, `/publicRooms`, `.well-known`; and the
wiring (metrics, rate-limit keys, where the database lives)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from werkzeug.test import Client

from examples.homeserver.app import HomeServer, HomeServerConfig, ListenerDispatch, default_state_dir

from .test_app import API, User, room_with


@pytest.fixture
def hs() -> Iterator[HomeServer]:
    server = HomeServer(HomeServerConfig(database=":memory:", rc_message=(1000.0, 1000)))
    yield server
    server.close()


@pytest.fixture
def client(hs: HomeServer) -> Client:
    return Client(hs.client_site)


def state_of(user: User, room_id: str) -> dict[tuple[str, str], Any]:
    return {(e["type"], e["state_key"]): e for e in user.call("GET", f"/rooms/{room_id}/state")}


def test_member_events_carry_the_profile_and_a_profile_change_is_a_member_event(client: Client) -> None:
    alice, bob = User(client, "alice"), User(client, "bob")
    alice.call("PUT", f"/profile/{alice.user_id}/displayname", {"displayname": "Alice A."})
    alice.call("PUT", f"/profile/{alice.user_id}/avatar_url", {"avatar_url": "mxc://localhost/a"})
    first, second = room_with(alice, bob), room_with(alice)
    member = state_of(alice, first)[("m.room.member", alice.user_id)]
    assert member["content"] == {
        "membership": "join",
        "displayname": "Alice A.",
        "avatar_url": "mxc://localhost/a",
    }
    since = bob.sync()["next_batch"]
    alice.call("PUT", f"/profile/{alice.user_id}/displayname", {"displayname": "Alice B."})
    # In every room Alice is in, a new member event with the new name (and the old one as prev_content).
    for room_id in (first, second):
        member = state_of(alice, room_id)[("m.room.member", alice.user_id)]
        assert member["content"]["displayname"] == "Alice B."
        assert member["content"]["avatar_url"] == "mxc://localhost/a"
        assert member["unsigned"]["prev_content"]["displayname"] == "Alice A."
    timeline = bob.sync(since)["rooms"]["join"][first]["timeline"]["events"]
    assert [(e["type"], e["content"].get("displayname")) for e in timeline] == [("m.room.member", "Alice B.")]
    joined = alice.call("GET", f"/rooms/{first}/joined_members")["joined"][alice.user_id]
    assert joined == {"display_name": "Alice B.", "avatar_url": "mxc://localhost/a"}


def test_state_events_that_replace_one_carry_prev_content(client: Client) -> None:
    alice = User(client, "alice")
    room_id = alice.call("POST", "/createRoom", {"name": "one"})["room_id"]
    first = state_of(alice, room_id)[("m.room.name", "")]
    assert "prev_content" not in first["unsigned"]
    alice.call("PUT", f"/rooms/{room_id}/state/m.room.name", {"name": "two"})
    renamed = state_of(alice, room_id)[("m.room.name", "")]
    assert renamed["unsigned"]["prev_content"] == {"name": "one"}
    assert renamed["unsigned"]["replaces_state"] == first["event_id"]
    assert renamed["unsigned"]["prev_sender"] == alice.user_id
    history = alice.call("GET", f"/rooms/{room_id}/messages?dir=b&limit=1")["chunk"]
    assert history[0]["unsigned"]["prev_content"] == {"name": "one"}


def test_cors_preflight_is_answered_everywhere(client: Client) -> None:
    """Browser clients send OPTIONS before each cross-origin call."""
    for path in (f"{API}/login", "/_matrix/client/versions", "/.well-known/matrix/client"):
        response = client.open(path, method="OPTIONS", headers={"Origin": "https://app.example"})
        assert response.status_code == 204, path
        assert response.headers["Access-Control-Allow-Origin"] == "*"
        assert "Authorization" in response.headers["Access-Control-Allow-Headers"]


def test_versions_and_well_known(client: Client) -> None:
    versions = client.get("/_matrix/client/versions").json["versions"]  # type: ignore[index]
    assert versions[-1] == "v1.11" and "v1.7" in versions
    well_known = client.get("/.well-known/matrix/client")
    assert well_known.status_code == 200
    assert well_known.json == {"m.homeserver": {"base_url": "http://localhost:8008"}}


def test_push_rules_are_the_specs_server_defaults(client: Client) -> None:
    alice = User(client, "alice")
    rules = alice.call("GET", "/pushrules/")["global"]
    ids = {kind: [rule["rule_id"] for rule in rules[kind]] for kind in rules}
    assert ids == {
        "override": [
            ".m.rule.master",
            ".m.rule.suppress_notices",
            ".m.rule.invite_for_me",
            ".m.rule.member_event",
            ".m.rule.is_user_mention",
            ".m.rule.contains_display_name",
            ".m.rule.is_room_mention",
            ".m.rule.roomnotif",
            ".m.rule.tombstone",
            ".m.rule.reaction",
            ".m.rule.room.server_acl",
            ".m.rule.suppress_edits",
        ],
        "content": [".m.rule.contains_user_name"],
        "room": [],
        "sender": [],
        "underride": [
            ".m.rule.call",
            ".m.rule.encrypted_room_one_to_one",
            ".m.rule.room_one_to_one",
            ".m.rule.message",
            ".m.rule.encrypted",
        ],
    }
    by_id = {rule["rule_id"]: rule for kind in rules.values() for rule in kind}
    assert by_id[".m.rule.master"]["enabled"] is False
    assert by_id[".m.rule.invite_for_me"]["conditions"][2] == {
        "kind": "event_match",
        "key": "state_key",
        "pattern": alice.user_id,
    }
    assert by_id[".m.rule.contains_user_name"]["pattern"] == "alice"
    assert all(rule["default"] is True for rule in by_id.values())
    assert alice.call("GET", "/pushrules/global/") == rules


def test_devices_list_rename_and_delete_with_interactive_auth(client: Client) -> None:
    alice = User(client, "alice")
    login = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": "alice"},
        "password": "pw",
        "initial_device_display_name": "laptop",
    }
    second = client.post(f"{API}/login", json=login).json
    devices = alice.call("GET", "/devices")["devices"]
    assert len(devices) == 2
    laptop = alice.call("GET", f"/devices/{second['device_id']}")  # type: ignore[index]
    assert laptop["display_name"] == "laptop" and laptop["user_id"] == alice.user_id
    assert laptop["last_seen_ts"] > 0
    alice.call("PUT", f"/devices/{second['device_id']}", {"display_name": "old laptop"})  # type: ignore[index]
    assert alice.call("GET", f"/devices/{second['device_id']}")["display_name"] == "old laptop"  # type: ignore[index]
    assert alice.call("GET", "/devices/NOPE", status=404)["errcode"] == "M_NOT_FOUND"
    # DELETE asks for the password first (user-interactive auth), refuses a wrong one.
    challenge = alice.call("DELETE", f"/devices/{second['device_id']}", {}, status=401)  # type: ignore[index]
    assert challenge["flows"] == [{"stages": ["m.login.password"]}] and challenge["session"]
    auth = {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": alice.user_id}}
    wrong = {"auth": {**auth, "password": "nope", "session": challenge["session"]}}
    alice.call("DELETE", f"/devices/{second['device_id']}", wrong, status=403)  # type: ignore[index]
    right = {"auth": {**auth, "password": "pw", "session": challenge["session"]}}
    alice.call("DELETE", f"/devices/{second['device_id']}", right)  # type: ignore[index]
    assert len(alice.call("GET", "/devices")["devices"]) == 1
    # The deleted device's token is gone with it.
    gone = client.get(
        f"{API}/account/whoami",
        headers={"Authorization": f"Bearer {second['access_token']}"},  # type: ignore[index]
    )
    assert (gone.status_code, gone.json["errcode"]) == (401, "M_UNKNOWN_TOKEN")  # type: ignore[index]


def test_keys_upload_query_claim(client: Client) -> None:
    alice, bob = User(client, "alice"), User(client, "bob")
    device_id = alice.call("GET", "/account/whoami")["device_id"]
    device_keys = {
        "user_id": alice.user_id,
        "device_id": device_id,
        "algorithms": ["m.olm.v1.curve25519-aes-sha2"],
        "keys": {f"curve25519:{device_id}": "k1"},
        "signatures": {},
    }
    uploaded = alice.call(
        "POST",
        "/keys/upload",
        {"device_keys": device_keys, "one_time_keys": {"signed_curve25519:AAA": {"key": "x"}}},
    )
    assert uploaded == {"one_time_key_counts": {"signed_curve25519": 1}}
    queried = bob.call("POST", "/keys/query", {"device_keys": {alice.user_id: []}})
    assert queried == {"device_keys": {alice.user_id: {device_id: device_keys}}, "failures": {}}
    claim = {"one_time_keys": {alice.user_id: {device_id: "signed_curve25519"}}}
    assert bob.call("POST", "/keys/claim", claim)["one_time_keys"] == {
        alice.user_id: {device_id: {"signed_curve25519:AAA": {"key": "x"}}}
    }
    assert bob.call("POST", "/keys/claim", claim)["one_time_keys"] == {}  # each key once


def test_public_rooms_directory(client: Client) -> None:
    alice, bob = User(client, "alice"), User(client, "bob")
    rooms = [
        alice.call(
            "POST", "/createRoom", {"visibility": "public", "preset": "public_chat", "name": f"room {n}"}
        )["room_id"]
        for n in range(3)
    ]
    private = alice.call("POST", "/createRoom", {"name": "hidden"})["room_id"]
    bob.call("POST", f"/join/{rooms[2]}", {})
    listed = client.get(f"{API}/publicRooms").json  # no access token needed
    assert listed["chunk"][0]["room_id"] == rooms[2]  # type: ignore[index]
    assert set(entry["room_id"] for entry in listed["chunk"]) == set(rooms)  # type: ignore[index]
    assert listed["total_room_count_estimate"] == 3  # type: ignore[index]
    top = listed["chunk"][0]  # type: ignore[index]
    assert top["num_joined_members"] == 2 and top["name"] == "room 2" and top["join_rule"] == "public"
    # Pages with limit and since.
    page = client.get(f"{API}/publicRooms?limit=2").json
    assert len(page["chunk"]) == 2 and "prev_batch" not in page  # type: ignore[index]
    rest = client.get(f"{API}/publicRooms?limit=2&since={page['next_batch']}").json  # type: ignore[index]
    assert len(rest["chunk"]) == 1 and "next_batch" not in rest and "prev_batch" in rest  # type: ignore[index]
    # POST with a search filter.
    found = bob.call("POST", "/publicRooms", {"filter": {"generic_search_term": "ROOM 1"}, "limit": 10})
    assert [entry["room_id"] for entry in found["chunk"]] == [rooms[1]]
    # A member lists and unlists a room.
    alice.call("PUT", f"/directory/list/room/{private}", {"visibility": "public"})
    assert alice.call("GET", f"/directory/list/room/{private}") == {"visibility": "public"}
    assert client.get(f"{API}/publicRooms").json["total_room_count_estimate"] == 4  # type: ignore[index]
    bob.call("PUT", f"/directory/list/room/{private}", {"visibility": "private"}, status=403)
    assert bob.call("GET", "/publicRooms?since=bogus", status=400)["errcode"] == "M_INVALID_PARAM"


def test_metrics_count_requests_on_their_own_site(hs: HomeServer, client: Client) -> None:
    User(client, "alice")
    assert client.get(f"{API}/publicRooms").status_code == 200
    # Not on the client site.
    assert client.get("/_synapse/metrics").status_code == 404
    text = Client(hs.metrics_site).get("/_synapse/metrics").get_data(as_text=True)
    received = [line for line in text.splitlines() if "requests_received_total{" in line]
    assert any('servlet="PublicRoomsServlet"' in line and line.endswith(" 1.0") for line in received), (
        received
    )
    assert any('servlet="RegisterServlet"' in line for line in received)
    assert "synapse_notifier_listeners 0.0" in text
    # Under gunicorn, the listener a request came in on picks the site.
    app = ListenerDispatch(hs.client_site, {9009: hs.metrics_site})
    on_metrics_port = Client(app).get("/_synapse/metrics", environ_overrides={"SERVER_PORT": "9009"})
    assert on_metrics_port.status_code == 200
    assert Client(app).get("/_synapse/metrics", environ_overrides={"SERVER_PORT": "8008"}).status_code == 404


def test_login_rate_limit_keys_on_the_resolved_client_address() -> None:
    """Behind a proxy, each client address has its own bucket (not the proxy's)."""
    hs = HomeServer(HomeServerConfig(database=":memory:", behind_proxy=True, rc_login_address=(0.001, 2)))
    client = Client(hs.client_site)
    body = {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "x"}, "password": "p"}

    def login(address: str) -> int:
        return client.post(f"{API}/login", json=body, headers={"X-Forwarded-For": address}).status_code

    assert [login("203.0.113.1") for _ in range(3)] == [403, 403, 429]
    assert login("203.0.113.2") == 403  # another client, its own bucket
    hs.close()


def test_the_database_lives_in_the_state_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("SYNWSGI_HS_STATE_DIR", "SYNWSGI_HS_DATABASE", "STATE_DIRECTORY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert default_state_dir() == tmp_path / "xdg" / "synwsgi-homeserver"
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "systemd"))  # systemd's StateDirectory=
    assert default_state_dir() == tmp_path / "systemd"
    monkeypatch.setenv("SYNWSGI_HS_STATE_DIR", str(tmp_path / "state"))
    hs = HomeServer(HomeServerConfig.from_env())
    User(Client(hs.client_site), "alice")
    hs.close()
    assert (tmp_path / "state" / "homeserver.db").is_file()
    assert oct((tmp_path / "state").stat().st_mode & 0o777) == "0o700"
    assert not (tmp_path / "homeserver.db").exists()  # never the working directory
    assert os.listdir(tmp_path) == ["state"]
