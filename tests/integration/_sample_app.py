"""A tiny raw WSGI application used to exercise the integration harness.

It deliberately avoids every dependency (including synwsgi and werkzeug's
Request/Response) so that ``test_harness.py`` only tests the servers and the
harness itself.

Routes (GET and HEAD):

``/``
    ``200 ok`` with a Content-Length.
``/stream?n=N``
    ``N`` small chunks from a generator, no Content-Length (so HTTP/1.1
    servers use chunked transfer encoding).
``/slow``
    sleeps 0.5 s, then ``200 slow``.
``/head-body``
    ``200 head-body`` with a Content-Length, *including for HEAD* (to see
    which servers strip a HEAD body the application wrongly returns).
``/broken?token=T[&bare=1]``
    yields one chunk, then raises ``BrokenPipeError`` from the iterator (with
    ``errno.EPIPE`` set, as a real failed ``send()`` would, unless ``bare=1``).
``/long?token=T[&chunk=65536&total=1073741824]``
    a generator streaming ``total`` bytes in ``chunk``-sized pieces; its
    ``finally`` writes ``SAMPLE-GEN-FINALLY token=T`` to stderr.
``/long-closable?token=T``
    the same stream wrapped in an iterable object whose explicit ``close()``
    writes ``SAMPLE-ITER-CLOSE token=T`` to stderr (no ``__del__``, so the line
    only appears when the server really calls ``close()``).
"""

from __future__ import annotations

import errno
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import parse_qs

StartResponse = Callable[..., Any]
Environ = dict[str, Any]


def _marker(line: str) -> None:
    sys.stderr.write(f"{line} pid={os.getpid()}\n")
    sys.stderr.flush()


def _query(environ: Environ) -> dict[str, str]:
    parsed = parse_qs(environ.get("QUERY_STRING", ""))
    return {k: v[-1] for k, v in parsed.items()}


def _stream(n: int) -> Iterator[bytes]:
    for i in range(n):
        yield f"chunk {i}\n".encode()


def _broken(token: str, bare: bool) -> Iterator[bytes]:
    try:
        yield b"first chunk\n"
        if bare:
            raise BrokenPipeError()
        raise BrokenPipeError(errno.EPIPE, os.strerror(errno.EPIPE))
    finally:
        _marker(f"SAMPLE-BROKEN-FINALLY token={token}")


def _long(token: str, chunk: int, total: int) -> Iterator[bytes]:
    block = b"x" * chunk
    sent = 0
    try:
        while sent < total:
            yield block
            sent += chunk
    finally:
        _marker(f"SAMPLE-GEN-FINALLY token={token} sent={sent}")


class _Closable:
    """An iterable with an explicit close() and no finalizer."""

    def __init__(self, token: str, chunk: int, total: int) -> None:
        self._token = token
        self._block = b"x" * chunk
        self._remaining = total

    def __iter__(self) -> _Closable:
        return self

    def __next__(self) -> bytes:
        if self._remaining <= 0:
            raise StopIteration
        self._remaining -= len(self._block)
        return self._block

    def close(self) -> None:
        _marker(f"SAMPLE-ITER-CLOSE token={self._token}")


def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    method = environ["REQUEST_METHOD"]
    path = environ.get("PATH_INFO", "/")
    query = _query(environ)
    head = method == "HEAD"

    if method not in ("GET", "HEAD"):
        start_response("405 Method Not Allowed", [("Content-Length", "0"), ("Allow", "GET, HEAD")])
        return []

    def fixed(status: str, body: bytes, content_type: str = "text/plain") -> list[bytes]:
        start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body)))])
        return [] if head else [body]

    if path == "/":
        return fixed("200 OK", b"ok")
    if path == "/head-body":
        body = b"head-body"
        start_response(
            "200 OK",
            [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))],
        )
        return [body]
    if path == "/slow":
        time.sleep(0.5)
        return fixed("200 OK", b"slow")
    if path == "/stream":
        n = int(query.get("n", "3"))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [] if head else _stream(n)
    if path == "/broken":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [] if head else _broken(query.get("token", "-"), query.get("bare") == "1")
    if path in ("/long", "/long-closable"):
        token = query.get("token", "-")
        chunk = int(query.get("chunk", str(64 * 1024)))
        total = int(query.get("total", str(1024**3)))
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        if head:
            return []
        if path == "/long":
            return _long(token, chunk, total)
        return _Closable(token, chunk, total)
    return fixed("404 Not Found", b"not found")
