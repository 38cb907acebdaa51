"""Behaviour 8 (second half): `StaticResource` serves files and never escapes its directory."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote

import pytest
from _helpers import (
    ANTI_FRAMING_HEADERS,
    assert_header_once,
    assert_headers_unique,
    assert_json_response,
    make_client,
)
from werkzeug.http import http_date
from werkzeug.test import Client, TestResponse

from synwsgi import StaticResource

SECRET = b"TOP SECRET: outside the static directory"
INDEX = b"<!DOCTYPE html><title>index</title><p>index page</p>\n"
CSS = b"body { color: red; }\n"
DIGITS = b"0123456789abcdefghij"


@pytest.fixture
def static_root(tmp_path: Path) -> Path:
    """`tmp/public` is served; `tmp/secret.txt` and `tmp/public-secret/` sit next to it."""
    public = tmp_path / "public"
    public.mkdir()
    (tmp_path / "secret.txt").write_bytes(SECRET)
    (tmp_path / "public-secret").mkdir()
    (tmp_path / "public-secret" / "secret.txt").write_bytes(SECRET)
    (public / "index.html").write_bytes(INDEX)
    (public / "style.css").write_bytes(CSS)
    (public / "data.json").write_bytes(b'{"a": 1}')
    (public / "app.js").write_bytes(b"console.log(1);\n")
    (public / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(32))
    (public / "digits.txt").write_bytes(DIGITS)
    (public / "snow\u2603 man.txt").write_bytes(b"snow")
    sub = public / "sub"
    sub.mkdir()
    (sub / "inner.txt").write_bytes(b"inner")
    (public / "empty").mkdir()
    return public


@pytest.fixture
def client(static_root: Path) -> Client:
    return make_client({"/static": StaticResource(static_root)})


def assert_file(response: TestResponse, content: bytes, content_type: str) -> None:
    assert response.status_code == 200, (response.status_code, response.data)
    assert response.data == content
    assert_header_once(response, "Content-Type", content_type)
    assert_header_once(response, "Content-Length", str(len(content)))
    for name, value in ANTI_FRAMING_HEADERS.items():
        assert_header_once(response, name, value)
    assert_headers_unique(response)


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("style.css", "text/css; charset=utf-8"),
        ("index.html", "text/html; charset=utf-8"),
        ("data.json", "application/json"),
        ("image.png", "image/png"),
        ("digits.txt", "text/plain; charset=utf-8"),
    ],
)
def test_files_with_content_types(client: Client, static_root: Path, name: str, content_type: str) -> None:
    assert_file(client.get(f"/static/{name}"), (static_root / name).read_bytes(), content_type)


def test_javascript_content_type(client: Client) -> None:
    response = client.get("/static/app.js")
    assert response.status_code == 200
    assert response.headers["Content-Type"].split(";")[0] in ("text/javascript", "application/javascript")


def test_directory_gives_its_index(client: Client) -> None:
    assert_file(client.get("/static/"), INDEX, "text/html; charset=utf-8")


def test_percent_encoded_file_name(client: Client) -> None:
    response = client.get("/static/" + quote("snow\u2603 man.txt"))
    assert response.status_code == 200
    assert response.data == b"snow"


def test_file_in_subdirectory(client: Client) -> None:
    assert_file(client.get("/static/sub/inner.txt"), b"inner", "text/plain; charset=utf-8")


@pytest.mark.parametrize("path", ["/static/sub", "/static/sub/", "/static/empty/", "/static/missing.txt"])
def test_no_directory_listing_and_missing_files_are_json_404(client: Client, path: str) -> None:
    response = client.get(path)
    body = assert_json_response(response, 404)
    assert body["errcode"] == "M_NOT_FOUND"
    assert b"inner.txt" not in response.data


def test_etag_and_if_none_match(client: Client) -> None:
    first = client.get("/static/style.css")
    etag = first.headers["ETag"]
    assert first.headers.getlist("ETag") == [etag]
    again = client.get("/static/style.css", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.data == b""
    other = client.get("/static/style.css", headers={"If-None-Match": '"something-else"'})
    assert other.status_code == 200
    assert other.data == CSS


def test_last_modified_and_if_modified_since(client: Client, static_root: Path) -> None:
    first = client.get("/static/style.css")
    last_modified = first.headers["Last-Modified"]
    assert first.headers.getlist("Last-Modified") == [last_modified]
    again = client.get("/static/style.css", headers={"If-Modified-Since": last_modified})
    assert again.status_code == 304
    assert again.data == b""
    old = http_date(os.stat(static_root / "style.css").st_mtime - 3600)
    assert client.get("/static/style.css", headers={"If-Modified-Since": old}).status_code == 200


def test_range_request(client: Client) -> None:
    response = client.get("/static/digits.txt", headers={"Range": "bytes=2-5"})
    assert response.status_code == 206
    assert response.data == DIGITS[2:6]
    assert_header_once(response, "Content-Range", f"bytes 2-5/{len(DIGITS)}")
    assert_header_once(response, "Content-Length", "4")
    assert_headers_unique(response)


def test_suffix_range_request(client: Client) -> None:
    response = client.get("/static/digits.txt", headers={"Range": "bytes=-3"})
    assert response.status_code == 206
    assert response.data == DIGITS[-3:]


def test_unsatisfiable_range(client: Client) -> None:
    response = client.get("/static/digits.txt", headers={"Range": "bytes=100-200"})
    assert response.status_code == 416


def test_head(client: Client) -> None:
    response = client.head("/static/style.css")
    assert response.status_code == 200
    assert response.data == b""
    assert_header_once(response, "Content-Length", str(len(CSS)))
    assert_header_once(response, "Content-Type", "text/css; charset=utf-8")
    for name, value in ANTI_FRAMING_HEADERS.items():
        assert_header_once(response, name, value)


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_other_methods_are_refused(client: Client, method: str) -> None:
    response = client.open("/static/style.css", method=method)
    assert response.data != CSS
    assert_json_response(response, 405)
    assert sorted(m.strip() for m in response.headers["Allow"].split(",")) == ["GET", "HEAD"]


TRAVERSALS = [
    "/static/../secret.txt",
    "/static/sub/../../secret.txt",
    "/static/%2e%2e/secret.txt",
    "/static/%2E%2E/secret.txt",
    "/static/%2e%2e%2fsecret.txt",
    "/static/%2F..%2Fsecret.txt",
    "/static/sub%2F..%2F..%2Fsecret.txt",
    "/static/..%2Fsecret.txt",
    "/static/.%2e/secret.txt",
    "/static/..%5Csecret.txt",
    "/static/%5C..%5Csecret.txt",
    "/static/sub\\..\\..\\secret.txt",
    "/static/..\\secret.txt",
    "/static/..",
    "/static/%2e%2e",
    "/static/../public-secret/secret.txt",
    "/static/%2e%2e/public-secret/secret.txt",
    "/static/secret.txt%00",
    "/static/%00",
    "/static/index.html%00.txt",
    "/static/%FF",
]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_traversal_attempts_are_json_404(client: Client, path: str) -> None:
    response = client.get(path)
    assert SECRET not in response.data
    assert response.status_code == 404, (response.status_code, response.data)
    body = assert_json_response(response, 404)
    assert isinstance(body["errcode"], str) and body["errcode"].startswith("M_")


def test_absolute_paths_are_json_404(client: Client, static_root: Path) -> None:
    secret = str(static_root.parent / "secret.txt")
    for path in (
        "/static/" + quote(secret),
        "/static/" + quote(secret, safe=""),
        "/static//" + quote(secret.lstrip("/")),
        "/static/%2F" + quote(secret.lstrip("/"), safe=""),
        "/static/" + quote("/etc/passwd", safe=""),
    ):
        response = client.get(path)
        assert SECRET not in response.data
        assert b"root:" not in response.data
        assert response.status_code == 404, (path, response.status_code)
        assert_json_response(response, 404)


def test_raw_traversal_target_is_json_404(client: Client) -> None:
    # A raw target that no client library would normalise first.
    for target in (
        "/static/../secret.txt",
        "/static/./../secret.txt",
        "/static/sub/%2e%2e/%2e%2e/secret.txt",
    ):
        response = client.get("/static/x", environ_overrides={"RAW_URI": target, "REQUEST_URI": target})
        assert SECRET not in response.data
        assert response.status_code == 404
        assert_json_response(response, 404)
