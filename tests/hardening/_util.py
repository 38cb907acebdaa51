"""Shared helpers of the hardening tests: raw requests through the test `Client`,
the invariants every response must keep, and raw-socket checks of real servers."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote_to_bytes, urlsplit

from werkzeug.test import Client, TestResponse

from tests.integration.servers import RawResponse, Server, http_get, open_connection, read_response

CORS_HEADER_NAMES = (
    "Access-Control-Allow-Origin",
    "Access-Control-Allow-Methods",
    "Access-Control-Allow-Headers",
    "Access-Control-Expose-Headers",
)

#: A header name is an RFC 9110 token; a value is visible ASCII/obs-text, space or tab.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_FIELD_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]*")


def path_info_of(target: str) -> str:
    """PATH_INFO as gunicorn derives it from a raw request target: the path,
    percent-decoded, as latin-1 text (absolute-form: the path after the authority)."""
    path = target.partition("?")[0]
    if path.startswith(("http://", "https://")):
        path = urlsplit(path).path or "/"
    return unquote_to_bytes(path.encode("latin-1", "surrogateescape")).decode("latin-1")


def open_raw(
    client: Client,
    method: str,
    target: str,
    *,
    headers: Mapping[str, str] | list[tuple[str, str]] | None = None,
    body: bytes | None = None,
    environ: Mapping[str, Any] | None = None,
    buffered: bool = True,
) -> TestResponse:
    """Send `target` exactly as a server would pass it on.

    `target` is the request target as latin-1 text (raw bytes >= 0x80 are
    characters U+0080..U+00FF), put verbatim into RAW_URI and REQUEST_URI;
    PATH_INFO and QUERY_STRING are derived from it the way gunicorn does.
    """
    query = target.partition("?")[2]
    overrides: dict[str, Any] = {
        "RAW_URI": target,
        "REQUEST_URI": target,
        "PATH_INFO": path_info_of(target),
        "QUERY_STRING": query,
    }
    if environ:
        overrides.update(environ)
    kwargs: dict[str, Any] = {}
    if body is not None:
        kwargs["data"] = body
    return client.open(
        "/",
        method=method,
        headers=list(headers.items()) if isinstance(headers, Mapping) else headers,
        environ_overrides=overrides,
        buffered=buffered,
        **kwargs,
    )


def header_problems(headers: list[tuple[str, str]]) -> list[str]:
    """Header names that are not tokens, values with CR, LF or other controls."""
    problems = []
    for name, value in headers:
        if not _TOKEN.fullmatch(name):
            problems.append(f"bad header name {name!r}")
        if not _FIELD_VALUE.fullmatch(value):
            problems.append(f"bad value of {name}: {value!r}")
    return problems


def content_type(response: TestResponse) -> str:
    return (response.headers.get("Content-Type") or "").split(";")[0].strip().lower()


def check_invariants(
    response: TestResponse,
    method: str,
    *,
    html_ok: bool = False,
    json_errors: bool = True,
    allow_500: bool = False,
    cors: bool = True,
) -> Any:
    """The properties every response of a synwsgi app keeps, whatever the input.

    * status < 500 (unless `allow_500`), and a known status class;
    * every header is well formed: no CR/LF or control characters, names are tokens;
    * HEAD responses have an empty body;
    * a JSON response parses, carries each CORS header exactly once (`cors`),
      and when it is an error, it is an object with a string `errcode` "M_...";
    * errors (>= 400) are JSON (`json_errors`), or HTML when `html_ok`.

    Returns the parsed JSON body (None if not JSON or HEAD).
    """
    status = response.status_code
    where = f"{method} -> {response.status}: {response.data[:300]!r}"
    assert 100 <= status <= 599, where
    if not allow_500:
        assert status < 500, where
    problems = header_problems(list(response.headers.to_wsgi_list()))
    assert not problems, f"{where}: {problems}"
    if method == "HEAD":
        assert response.data == b"", f"HEAD body: {where}"
    ctype = content_type(response)
    parsed = None
    if ctype == "application/json":
        if cors:
            for name in CORS_HEADER_NAMES:
                got = response.headers.getlist(name)
                assert len(got) == 1, f"{name} x{len(got)}: {where}"
        if method != "HEAD" and status not in (204, 304):
            parsed = json.loads(response.data)
            if status >= 400:
                assert isinstance(parsed, dict), where
                errcode = parsed.get("errcode")
                assert isinstance(errcode, str) and errcode.startswith("M_"), where
                assert isinstance(parsed.get("error"), str), where
    elif status >= 400 and method != "HEAD":
        if html_ok:
            assert ctype == "text/html", f"error neither JSON nor HTML: {where}"
        elif json_errors:
            raise AssertionError(f"error response is not JSON: {where}")
    return parsed


def timed(fn: Any, *args: Any, **kwargs: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - start


# -- real servers ----------------------------------------------------------------------


def request_bytes(
    method: str, target: bytes, headers: list[tuple[bytes, bytes]] | None = None, body: bytes = b""
) -> bytes:
    """A raw HTTP/1.1 request with `Connection: close`; `target` is sent verbatim."""
    lines = [
        method.encode("latin-1") + b" " + target + b" HTTP/1.1",
        b"Host: 127.0.0.1",
        b"Connection: close",
    ]
    lines += [name + b": " + value for name, value in headers or []]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def send_raw(server: Server, data: bytes, *, timeout: float = 10.0, head: bool = False) -> RawResponse:
    """Send `data` on a fresh connection and read one response."""
    with open_connection(server, timeout=timeout) as sock:
        sock.sendall(data)
        return read_response(sock, head=head)


def is_gunicorn_rejection(response: RawResponse) -> bool:
    """gunicorn's own parser error page (no Server header, plain HTML), not the app's answer."""
    return response.headers.get("Server") is None and (response.headers.get("Content-Type") or "").startswith(
        "text/html"
    )


def assert_serves(server: Server, path: str = "/_matrix/client/versions") -> None:
    """The server still answers a normal request with 200."""
    status, _, body = http_get(server, path, timeout=10)
    assert status == 200, (status, body[:200], server.log_tail(20))


def raw_json_error(response: RawResponse) -> dict[str, Any]:
    assert (response.headers.get("Content-Type") or "").startswith("application/json"), response
    body = json.loads(response.body)
    assert isinstance(body, dict) and str(body.get("errcode", "")).startswith("M_"), body
    return body


def raw_header_problems(response: RawResponse) -> list[str]:
    return header_problems(list(response.headers))


# -- the static tree -----------------------------------------------------------------


@dataclass
class StaticTree:
    root: Path  # holds static/ and the secret
    static: Path  # served
    secret: Path  # outside static/, beside it
    secret_bytes: bytes
    inside: Path  # a file inside static/
    inside_bytes: bytes
    outer_secret: Path  # one level further up
    outer_secret_bytes: bytes


def make_static_tree(base: Path) -> StaticTree:
    """The tree of test_static_traversal.py under `base` (see its docstring)."""
    token = uuid.uuid4().hex
    outer = base / "outer"
    root = outer / "root"
    static = root / "static"
    (static / "sub" / "deeper").mkdir(parents=True)
    inside = static / "inside.txt"
    inside_bytes = f"INSIDE-OK {token}\n".encode()
    inside.write_bytes(inside_bytes)
    (static / "sub" / "inner.txt").write_bytes(b"INNER-OK\n")
    (static / "index.html").write_bytes(b"<!DOCTYPE html><title>index</title>\n")
    secret = root / "secret.txt"
    secret_bytes = f"TOP-SECRET-{token}\n".encode()
    secret.write_bytes(secret_bytes)
    outer_secret = outer / "secret.txt"
    outer_secret_bytes = f"OUTER-SECRET-{token}\n".encode()
    outer_secret.write_bytes(outer_secret_bytes)
    # A sibling whose name shares the prefix: "static" vs "static-private".
    (root / "static-private").mkdir()
    (root / "static-private" / "secret.txt").write_bytes(secret_bytes)
    return StaticTree(
        root, static, secret, secret_bytes, inside, inside_bytes, outer_secret, outer_secret_bytes
    )
