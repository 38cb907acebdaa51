"""Drive a WSGI callable in-process: environ building, calling, capturing."""

from __future__ import annotations

import io
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_to_bytes

Environ = dict[str, Any]
Headers = list[tuple[str, str]]
WSGIApp = Callable[[Environ, Callable[..., Any]], Iterable[bytes]]


def make_environ(target: str, method: str = "GET") -> Environ:
    """A gunicorn-like environ for the raw request target ``target``.

    ``RAW_URI``/``REQUEST_URI`` keep the raw target (path + query) like
    gunicorn and the werkzeug dev server; ``PATH_INFO`` is the
    percent-decoded path as latin-1 text, as PEP 3333 requires.
    """
    path, _, query = target.partition("?")
    return {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": unquote_to_bytes(path).decode("latin-1"),
        "QUERY_STRING": query,
        "RAW_URI": target,
        "REQUEST_URI": target,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8008",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "SERVER_SOFTWARE": "bench",
        "REMOTE_ADDR": "127.0.0.1",
        "REMOTE_PORT": "40000",
        "HTTP_HOST": "127.0.0.1:8008",
        "HTTP_USER_AGENT": "bench/1.0",
        "HTTP_ACCEPT": "*/*",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }


def _discard(data: bytes) -> None:
    """The ``write`` callable returned by the trivial start_response."""


def null_start_response(status: str, headers: Headers, exc_info: object = None) -> Callable[[bytes], None]:
    return _discard


def _close(result: Iterable[bytes]) -> None:
    """PEP 3333: the server must call ``close()`` if the iterable has one."""
    close = getattr(result, "close", None)
    if close is not None:
        close()


def call_once(app: WSGIApp, base: Environ) -> None:
    """One request: copy the environ, call, consume and close the iterable."""
    environ = base.copy()
    environ["wsgi.input"] = io.BytesIO(b"")
    result = app(environ, null_start_response)
    try:
        for _ in result:
            pass
    finally:
        _close(result)


def null_app(environ: Environ, start_response: Callable[..., Any]) -> Iterable[bytes]:
    """Does nothing: measures the harness overhead itself."""
    start_response("200 OK", [])
    return ()


@dataclass(frozen=True)
class Captured:
    status: str
    headers: Headers
    body: bytes

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        for key, value in self.headers:
            if key.lower() == lowered:
                return value
        return None


def capture(app: WSGIApp, base: Environ) -> Captured:
    """Call ``app`` once and return what it answered."""
    seen: dict[str, Any] = {}
    chunks: list[bytes] = []

    def start_response(status: str, headers: Headers, exc_info: object = None) -> Callable[[bytes], None]:
        seen["status"], seen["headers"] = status, list(headers)
        return chunks.append

    environ = base.copy()
    environ["wsgi.input"] = io.BytesIO(b"")
    result = app(environ, start_response)
    try:
        chunks.extend(result)
    finally:
        _close(result)
    return Captured(seen.get("status", ""), seen.get("headers", []), b"".join(chunks))
