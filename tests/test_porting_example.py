"""Issue 10, section 5: the porting guide's worked example.

`examples/porting/notes.py` must be exactly `synapse_notes.py` after
`port.sh` (module paths replaced, nothing else), and the ported module must
work: through its app, the test `Client`, real auth, transactions and rate
limits.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from _helpers import assert_header_once, assert_json_error, assert_json_response
from werkzeug.test import Client, TestResponse

from examples.porting.homeserver import HomeServer, create_app

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "porting"
BASE = "/_matrix/client/unstable/org.example.notes"


def test_ported_module_is_the_sed_output_of_the_synapse_one() -> None:
    ported = subprocess.run(
        ["sh", str(EXAMPLE / "port.sh"), str(EXAMPLE / "synapse_notes.py")],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    assert ported == (EXAMPLE / "notes.py").read_text(encoding="utf-8")
    assert "synapse." not in ported.replace("synapse_notes", "")
    original = (EXAMPLE / "synapse_notes.py").read_text(encoding="utf-8")
    assert original.count("\n") == ported.count("\n")  # same lines: only module paths changed


def test_porting_guide_shows_the_same_sed_line() -> None:
    expressions = re.compile(r"-e '([^']+)'")
    script = expressions.findall((EXAMPLE / "port.sh").read_text(encoding="utf-8"))
    guide = expressions.findall((EXAMPLE.parent.parent / "docs" / "porting.rst").read_text(encoding="utf-8"))
    assert script
    assert guide == script


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def time(self) -> float:
        return self.now

    def time_msec(self) -> int:
        return int(self.now * 1000)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def hs(clock: FakeClock) -> HomeServer:
    hs = HomeServer(clock=clock)
    store = hs.get_datastores().main
    store.add_token("alice-token", "@alice:example.org", "ALICEPHONE")
    store.add_token("bob-token", "@bob:example.org", "BOBLAPTOP")
    store.add_token("admin-token", "@admin:example.org", "ADMIN")
    store.unlimited.add("@admin:example.org")
    return hs


@pytest.fixture
def client(hs: HomeServer) -> Client:
    return Client(create_app(hs))


def auth(token: str = "alice-token") -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def add(
    client: Client, txn: str, title: str = "t", body: str = "b", token: str = "alice-token"
) -> TestResponse:
    return client.put(
        f"{BASE}/notes/{txn}", headers=auth(token), data=json.dumps({"title": title, "body": body})
    )


def test_add_and_read_a_note(client: Client) -> None:
    note_id = assert_json_response(add(client, "txn1", "Shopping", "milk"), 200)["note_id"]
    body = assert_json_response(client.get(f"{BASE}/note/{note_id}", headers=auth()), 200)
    assert body["title"] == "Shopping"
    assert body["body"] == "milk"
    assert body["owner"] == "@alice:example.org"


def test_retried_put_adds_one_note(client: Client, hs: HomeServer) -> None:
    first = assert_json_response(add(client, "txn1", "once"), 200)
    assert assert_json_response(add(client, "txn1", "twice?"), 200) == first
    listing = assert_json_response(client.get(f"{BASE}/notes", headers=auth()), 200)
    assert [note["title"] for note in listing["chunk"]] == ["once"]


def test_same_txn_id_from_another_user_is_another_note(client: Client) -> None:
    mine = assert_json_response(add(client, "txn1"), 200)
    theirs = assert_json_response(add(client, "txn1", token="bob-token"), 200)
    assert mine != theirs


def test_missing_params(client: Client) -> None:
    response = client.put(f"{BASE}/notes/t", headers=auth(), data=b'{"title": "x"}')
    assert_json_error(response, 400, "M_MISSING_PARAM", "Missing params: ['body']")


def test_bad_bodies(client: Client) -> None:
    assert_json_error(client.put(f"{BASE}/notes/t1", headers=auth(), data=b"nope"), 400, "M_NOT_JSON")
    assert_json_error(client.put(f"{BASE}/notes/t2", headers=auth(), data=b"[]"), 400, "M_BAD_JSON")
    response = client.put(f"{BASE}/notes/t3", headers=auth(), data=b'{"title": 1, "body": "x"}')
    assert_json_error(response, 400, "M_BAD_JSON")
    assert_json_error(add(client, "t4", title="x" * 201), 400, "M_TOO_LARGE")


def next_page(client: Client, page: dict[str, str]) -> TestResponse:
    return client.get(f"{BASE}/notes?limit=2&from={page['next_batch']}", headers=auth())


def test_paging(client: Client) -> None:
    for i in range(5):
        add(client, f"txn{i}", title=f"note {i}")
    page = assert_json_response(client.get(f"{BASE}/notes?limit=2", headers=auth()), 200)
    assert [n["title"] for n in page["chunk"]] == ["note 4", "note 3"]
    page = assert_json_response(
        client.get(f"{BASE}/notes?limit=2&from={page['next_batch']}", headers=auth()), 200
    )
    assert [n["title"] for n in page["chunk"]] == ["note 2", "note 1"]
    page = assert_json_response(
        client.get(f"{BASE}/notes?limit=2&from={page['next_batch']}", headers=auth()), 200
    )
    assert [n["title"] for n in page["chunk"]] == ["note 0"]
    assert "next_batch" not in page


@pytest.mark.parametrize(
    ("query", "errcode"),
    [
        ("limit=0", "M_INVALID_PARAM"),
        ("limit=101", "M_INVALID_PARAM"),
        ("limit=x", "M_INVALID_PARAM"),
        ("limit=-1", "M_INVALID_PARAM"),
        ("from=abc", "M_INVALID_PARAM"),
        ("from=%C3%A9", "M_UNKNOWN"),
    ],
)
def test_bad_query_parameters(client: Client, query: str, errcode: str) -> None:
    assert_json_error(client.get(f"{BASE}/notes?{query}", headers=auth()), 400, errcode)


def test_other_users_note_is_forbidden_and_unknown_is_not_found(client: Client) -> None:
    note_id = assert_json_response(add(client, "txn1"), 200)["note_id"]
    assert_json_error(client.get(f"{BASE}/note/{note_id}", headers=auth("bob-token")), 403, "M_FORBIDDEN")
    assert_json_error(client.delete(f"{BASE}/note/{note_id}", headers=auth("bob-token")), 403, "M_FORBIDDEN")
    assert_json_error(client.get(f"{BASE}/note/n999", headers=auth()), 404, "M_NOT_FOUND", "Unknown note")


def test_delete(client: Client) -> None:
    note_id = assert_json_response(add(client, "txn1"), 200)["note_id"]
    assert assert_json_response(client.delete(f"{BASE}/note/{note_id}", headers=auth()), 200) == {}
    assert_json_error(client.get(f"{BASE}/note/{note_id}", headers=auth()), 404, "M_NOT_FOUND")


def test_tokens_required(client: Client) -> None:
    assert_json_error(client.get(f"{BASE}/notes"), 401, "M_MISSING_TOKEN")
    assert_json_error(client.get(f"{BASE}/notes", headers=auth("stolen")), 401, "M_UNKNOWN_TOKEN")


def test_rate_limited_after_the_burst(client: Client, clock: FakeClock) -> None:
    for i in range(10):  # rc_message: burst 10 at 0.2/s
        assert_json_response(add(client, f"txn{i}"), 200)
    response = add(client, "txn10")
    body = assert_json_error(response, 429, "M_LIMIT_EXCEEDED")
    assert body["retry_after_ms"] == 5000
    assert_header_once(response, "Retry-After", "5")
    clock.now += 5
    assert_json_response(add(client, "txn10"), 200)  # the 429 was not cached for this txn


def test_unlimited_user_is_not_rate_limited(client: Client) -> None:
    for i in range(15):
        assert_json_response(add(client, f"txn{i}", token="admin-token"), 200)


def test_unknown_paths_and_versions(client: Client) -> None:
    response = client.get("/_matrix/client/v3/org.example.notes/notes", headers=auth())
    assert response.status_code == 404
    response = client.post(f"{BASE}/notes", headers=auth())
    assert response.status_code == 405
