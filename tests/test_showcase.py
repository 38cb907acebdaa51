"""The showcase app `wsgi.app`: every endpoint the issue lists."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import canonicaljson
import pytest
from _helpers import (
    ANTI_FRAMING_HEADERS,
    INTERNAL_ERROR_BODY,
    assert_cors,
    assert_header_once,
    assert_headers_unique,
    assert_json_error,
    assert_json_response,
    assert_no_cors,
    assert_unrecognized,
    error_records,
)
from werkzeug.test import Client, TestResponse

import synwsgi
import wsgi

WEBROOT_INDEX = Path(synwsgi.__file__).parent / "webroot" / "index.html"
ROOM = "/_matrix/client/v3/rooms"


@pytest.fixture
def client() -> Client:
    return Client(wsgi.app)


def stats(client: Client) -> dict[str, int]:
    body = assert_json_response(client.get("/_demo/stats"), 200)
    assert set(body) >= {"cancelled", "completed", "streams_closed"}
    return {key: int(value) for key, value in body.items()}


def assert_html(response: TestResponse, status: int) -> str:
    assert response.status_code == status, (response.status_code, response.data)
    assert_header_once(response, "Content-Type", "text/html; charset=utf-8")
    assert_header_once(response, "Content-Length", str(len(response.data)))
    for name, value in ANTI_FRAMING_HEADERS.items():
        assert_header_once(response, name, value)
    assert_no_cors(response)
    assert_headers_unique(response)
    return response.data.decode()


def test_application_and_app_are_the_same() -> None:
    assert wsgi.application is wsgi.app
    assert isinstance(wsgi.app, synwsgi.Site)


def test_root_redirects_to_static(client: Client) -> None:
    response = client.get("/")
    assert response.status_code == 302
    assert_header_once(response, "Location", "/_matrix/static/")


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/_matrix/client/versions",
        f"{ROOM}/!r:hs/send/m.room.message/1",
        "/_matrix/static/",
        "/_demo/hello",
        "/nowhere/at/all",
        "/_demo/echo",
    ],
)
def test_options_anywhere(client: Client, path: str) -> None:
    response = client.options(path)
    assert response.status_code == 204
    assert response.data == b""
    assert_header_once(response, "Content-Length", "0")
    assert_cors(response)
    assert_headers_unique(response)


def test_static_index(client: Client) -> None:
    response = client.get("/_matrix/static/")
    assert response.status_code == 200
    assert response.data == WEBROOT_INDEX.read_bytes()
    assert response.headers["Content-Type"].startswith("text/html")
    for name, value in ANTI_FRAMING_HEADERS.items():
        assert_header_once(response, name, value)
    assert_headers_unique(response)


def test_static_traversal(client: Client) -> None:
    for path in (
        "/_matrix/static/../__init__.py",
        "/_matrix/static/%2e%2e/__init__.py",
        "/_matrix/static/..%2Fsite.py",
    ):
        response = client.get(path)
        assert response.status_code == 404
        assert b"import" not in response.data
        assert_json_response(response, 404)


def test_versions(client: Client) -> None:
    response = client.get("/_matrix/client/versions")
    body = assert_json_response(response, 200)
    assert isinstance(body["versions"], list) and body["versions"]
    assert all(isinstance(v, str) for v in body["versions"])
    assert response.data == canonicaljson.encode_canonical_json(body)


def test_versions_head_and_wrong_method(client: Client) -> None:
    get = client.get("/_matrix/client/versions")
    head = client.head("/_matrix/client/versions")
    assert head.status_code == 200
    assert head.data == b""
    assert head.headers["Content-Length"] == str(len(get.data))
    response = client.post("/_matrix/client/versions")
    assert_unrecognized(response, 405)
    # The root is an OptionsResource, so OPTIONS is answered here too.
    assert sorted(m.strip() for m in response.headers["Allow"].split(",")) == ["GET", "HEAD", "OPTIONS"]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (
            f"{ROOM}/%21room%3Aexample.org/state/m.room.member/%40alice%3Aexample.org",
            {
                "room_id": "!room:example.org",
                "event_type": "m.room.member",
                "state_key": "@alice:example.org",
            },
        ),
        (
            f"{ROOM}/%21room%3Aexample.org/state/m.room.topic",
            {"room_id": "!room:example.org", "event_type": "m.room.topic", "state_key": ""},
        ),
        (
            f"{ROOM}/a%2Fb/state/%E2%98%83/x%2Fy%3Fz",
            {"room_id": "a/b", "event_type": "\u2603", "state_key": "x/y?z"},
        ),
        (
            f"{ROOM}/r/state/t?state_key=ignored&room_id=ignored",
            {"room_id": "r", "event_type": "t", "state_key": ""},
        ),
    ],
)
def test_room_state(client: Client, path: str, expected: dict[str, str]) -> None:
    response = client.get(path)
    assert assert_json_response(response, 200) == expected
    assert response.data == canonicaljson.encode_canonical_json(expected)


def test_room_state_bad_utf8_and_unknown_paths(client: Client) -> None:
    response = client.get(f"{ROOM}/%FF/state/m.room.topic")
    body = assert_json_response(response, 400)
    assert body["errcode"].startswith("M_")
    assert_unrecognized(client.get(f"{ROOM}/r/state/t/k/extra"))
    assert_unrecognized(client.get(f"{ROOM}/r/nostate"))
    assert_unrecognized(client.get("/_matrix/client/v3/unknown"))


def test_room_send(client: Client) -> None:
    content = {"msgtype": "m.text", "body": "hello \u2603"}
    response = client.put(f"{ROOM}/%21r%3Ahs/send/m.room.message/txn%2F1", data=json.dumps(content))
    assert assert_json_response(response, 200) == {
        "room_id": "!r:hs",
        "event_type": "m.room.message",
        "txn_id": "txn/1",
        "content": content,
    }


def test_room_send_needs_a_json_object(client: Client) -> None:
    path = f"{ROOM}/r/send/m.room.message/t1"
    assert_json_error(client.put(path, data=b"[1]"), 400, "M_BAD_JSON", "Content must be a JSON object.")
    assert_json_error(client.put(path, data=b"{oops"), 400, "M_NOT_JSON", "Content not JSON.")
    assert_json_error(client.put(path, data=b""), 400, "M_NOT_JSON", "Content not JSON.")
    assert_json_error(client.put(path, data=b'{"a": NaN}'), 400, "M_NOT_JSON", "Content not JSON.")
    assert_unrecognized(client.post(path), 405)


def test_echo(client: Client) -> None:
    obj = {"b": [1, 2, {"c": None}], "a": "\u2603", "n": 2**70}
    response = client.post("/_demo/echo", data=json.dumps(obj))
    assert assert_json_response(response, 200) == obj
    assert response.data == canonicaljson.encode_canonical_json(obj)
    assert_json_error(client.post("/_demo/echo", data=b'"str"'), 400, "M_BAD_JSON")


def test_error_forbidden(client: Client) -> None:
    assert_json_error(client.get("/_demo/error/forbidden"), 403, "M_FORBIDDEN")


def test_error_ratelimit(client: Client) -> None:
    response = client.get("/_demo/error/ratelimit")
    body = assert_json_error(response, 429, "M_LIMIT_EXCEEDED")
    assert body["retry_after_ms"] == 2000
    assert_header_once(response, "Retry-After", "2")


def test_error_notfound(client: Client) -> None:
    assert_json_error(client.get("/_demo/error/notfound"), 404, "M_NOT_FOUND")


def test_error_crash(client: Client, request_log: pytest.LogCaptureFixture) -> None:
    response = client.get("/_demo/error/crash")
    assert response.data == INTERNAL_ERROR_BODY
    assert_json_response(response, 500)
    assert b"on purpose" not in response.data
    errors = error_records(request_log)
    assert len(errors) == 1
    assert "ErrorServlet" in errors[0].getMessage()
    assert errors[0].exc_info is not None and errors[0].exc_info[0] is RuntimeError


def test_hello_escapes_name(client: Client) -> None:
    body = assert_html(client.get("/_demo/hello?name=%3Cb%3EBob%3C%2Fb%3E%20%26%20%E2%98%83"), 200)
    assert "&lt;b&gt;Bob&lt;/b&gt; &amp; \u2603" in body
    assert "<b>Bob" not in body
    assert "world" in assert_html(client.get("/_demo/hello"), 200)


def test_html_error(client: Client) -> None:
    body = assert_html(client.get("/_demo/html-error"), 418)
    assert "<script>" not in body
    assert "&lt;script&gt;" in body
    assert "418" in body


def test_redirect_with_cookie(client: Client) -> None:
    response = client.get("/_demo/redirect")
    assert response.status_code == 302
    assert_header_once(response, "Location", "/_matrix/static/")
    cookies = response.headers.getlist("Set-Cookie")
    assert len(cookies) == 1
    assert cookies[0].startswith("session=demo")


def test_stream(client: Client) -> None:
    before = stats(client)["streams_closed"]
    response = client.get("/_demo/stream?bytes=200000", buffered=True)
    assert response.status_code == 200
    assert "Content-Length" not in response.headers
    assert_header_once(response, "Content-Type", "application/json")
    assert len(response.data) >= 200000
    assert isinstance(json.loads(response.data), list)
    assert stats(client)["streams_closed"] == before + 1


def test_stream_closed_when_client_leaves_early(client: Client) -> None:
    before = stats(client)["streams_closed"]
    response = client.open("/_demo/stream?bytes=100000000", buffered=False)
    first = next(response.iter_encoded())
    assert first.startswith(b"[")
    response.close()
    assert stats(client)["streams_closed"] == before + 1


def test_stream_bad_parameter(client: Client) -> None:
    assert_json_error(client.get("/_demo/stream?bytes=lots"), 400, "M_INVALID_PARAM")


def test_large(client: Client) -> None:
    response = client.get("/_demo/large?items=7")
    body = assert_json_response(response, 200)
    items = body["items"]
    assert len(items) == 7
    assert len({item["event_id"] for item in items}) == 7
    for item in items:
        assert {"type", "room_id", "event_id", "sender", "content"} <= set(item)
    assert response.data == canonicaljson.encode_canonical_json(body)


def test_large_default_and_many(client: Client) -> None:
    body = assert_json_response(client.get("/_demo/large?items=2000"), 200)
    assert len(body["items"]) == 2000


@pytest.mark.parametrize("path", ["/_demo/slow", "/_demo/slow-uncancellable"])
def test_slow_handlers_complete(client: Client, path: str) -> None:
    before = stats(client)
    body = assert_json_response(client.get(f"{path}?seconds=0.01"), 200)
    assert body == {"slept": 0.01}
    after = stats(client)
    assert after["completed"] == before["completed"] + 1
    assert after["cancelled"] == before["cancelled"]


@pytest.mark.parametrize("query", ["seconds=61", "seconds=-1", "seconds=abc"])
def test_slow_rejects_bad_seconds(client: Client, query: str) -> None:
    assert_json_error(client.get(f"/_demo/slow?{query}"), 400, "M_INVALID_PARAM")


def test_slow_is_cancellable_and_other_is_not() -> None:
    assert synwsgi.is_function_cancellable(wsgi.SlowServlet().on_GET)
    assert not synwsgi.is_function_cancellable(wsgi.SlowUncancellableServlet().on_GET)


def test_stats(client: Client) -> None:
    numbers = stats(client)
    assert all(value >= 0 for value in numbers.values())


@pytest.mark.parametrize(
    "path", ["/nope", "/_demo", "/_demo/nope", "/_matrix", "/_demo/hello/deeper", "/x/y/z"]
)
def test_unknown_paths_are_json_404(client: Client, path: str) -> None:
    assert_unrecognized(client.get(path))


def test_every_json_endpoint_has_unique_headers(client: Client) -> None:
    responses: list[Any] = [
        client.get("/_matrix/client/versions"),
        client.get(f"{ROOM}/r/state/t"),
        client.get("/_demo/error/forbidden"),
        client.get("/_demo/stats"),
        client.get("/nope"),
    ]
    for response in responses:
        assert_headers_unique(response)
        assert_cors(response)
