"""A bare WSGI app with none of synwsgi's browser-facing protections.

It plays two parts in `test_cross_origin.py`:

* the page origin: `/page.html` is the (empty) page the browser opens, from
  which the tests' JavaScript fetches from and frames the showcase app on
  another origin;
* the negative control: it answers the same paths as the showcase app
  (`/_demo/hello`, `/_demo/error/forbidden`, the room send endpoint) but
  without CORS headers and without `X-Frame-Options` /
  `Content-Security-Policy: frame-ancestors`, so Chromium frames its hello page
  and refuses its cross-origin JSON: proof that the test's detection works.

Only the standard library: it must not share code with what it stands in for.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

PAGE = (
    b"<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
    b"<title>cross-origin test page</title></head><body><p>test page</p></body></html>\n"
)
HELLO = (
    b"<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8><title>Hello</title></head>"
    b"<body><p>Hello, world!</p></body></html>\n"
)
SEND_PREFIX = "/_matrix/client/v3/rooms/"

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


def _respond(start_response: StartResponse, status: str, content_type: str, body: bytes) -> Iterable[bytes]:
    start_response(
        status,
        [
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
        ],
    )
    return [body]


def _json(start_response: StartResponse, status: str, obj: Any) -> Iterable[bytes]:
    return _respond(start_response, status, "application/json", json.dumps(obj).encode())


def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    method = environ["REQUEST_METHOD"]
    path = environ.get("PATH_INFO", "")
    if method == "GET" and path in ("/", "/page.html"):
        return _respond(start_response, "200 OK", "text/html; charset=utf-8", PAGE)
    if method == "GET" and path == "/_demo/hello":
        return _respond(start_response, "200 OK", "text/html; charset=utf-8", HELLO)
    if method == "GET" and path == "/_demo/error/forbidden":
        return _json(
            start_response,
            "403 Forbidden",
            {"errcode": "M_FORBIDDEN", "error": "You are not allowed to do that"},
        )
    if method == "PUT" and path.startswith(SEND_PREFIX) and "/send/" in path:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        content = json.loads(environ["wsgi.input"].read(length) or b"{}")
        return _json(start_response, "200 OK", {"content": content})
    if method == "OPTIONS":
        # Answers the preflight, but grants nothing: no Access-Control-* headers.
        return _respond(start_response, "204 No Content", "text/plain", b"")
    return _json(start_response, "404 Not Found", {"errcode": "M_NOT_FOUND", "error": "Not found"})
