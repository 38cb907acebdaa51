"""Helpers for the tests that run the showcase app (``wsgi:app``) on real servers.

* request builders (``request_bytes``) for raw sockets;
* ``/_demo/stats`` readers (``demo_stats``, ``wait_for_stat``);
* socket state (``wait_closed``, ``nothing_readable``);
* ``dechunk`` for a chunked body read off the wire.

Everything is bounded in time; nothing here starts or stops servers.
"""

from __future__ import annotations

import json
import select
import socket
import time
from collections.abc import Mapping

from .servers import Server, http_get

#: The servers that keep HTTP/1.1 connections alive between requests.
KEEPALIVE_KINDS = frozenset({"gthread", "gevent", "pywsgi"})
#: The gunicorn workers that run requests as greenlets on one hub.
GEVENT_KINDS = frozenset({"gevent", "pywsgi"})


def request_bytes(
    method: str,
    target: str,
    headers: Mapping[str, str] | None = None,
    body: bytes = b"",
    *,
    version: str = "HTTP/1.1",
) -> bytes:
    """A raw request; adds ``Host`` (HTTP/1.1) and nothing else on its own."""
    lines = [f"{method} {target} {version}"]
    all_headers = dict(headers or {})
    if version == "HTTP/1.1":
        all_headers.setdefault("Host", "127.0.0.1")
    lines += [f"{name}: {value}" for name, value in all_headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def demo_stats(server: Server, *, timeout: float = 10.0) -> dict[str, int]:
    """``/_demo/stats`` of the (single) worker."""
    status, _, body = http_get(server, "/_demo/stats", timeout=timeout)
    assert status == 200, (status, body)
    stats: dict[str, int] = json.loads(body)
    return stats


def wait_for_stat(
    server: Server,
    name: str,
    baseline: int,
    *,
    since: float,
    timeout: float,
    poll: float = 0.01,
) -> tuple[dict[str, int], float]:
    """Poll ``/_demo/stats`` until ``name`` exceeds ``baseline``.

    Returns the stats and the seconds from ``since`` (a ``time.monotonic()``
    value) to the poll that saw the increment. Raises AssertionError after
    ``timeout`` seconds from ``since``.
    """
    deadline = since + timeout
    while True:
        stats = demo_stats(server, timeout=max(0.5, deadline - time.monotonic() + 1))
        now = time.monotonic()
        if stats[name] > baseline:
            return stats, now - since
        if now >= deadline:
            raise AssertionError(
                f"{server.name}: {name} stayed at {stats[name]} (baseline {baseline}) "
                f"for {now - since:.2f}s; stats={stats}\nlog tail:\n{server.log_tail(30)}"
            )
        time.sleep(poll)


def nothing_readable(sock: socket.socket) -> bool:
    """True when the server has sent nothing (and not closed) so far."""
    readable, _, _ = select.select([sock], [], [], 0)
    return not readable


def wait_closed(sock: socket.socket, timeout: float) -> tuple[bool, bytes]:
    """Read until the peer closes or ``timeout`` passes.

    Returns (closed, bytes received meanwhile). A reset counts as closed.
    """
    deadline = time.monotonic() + timeout
    received = bytearray()
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False, bytes(received)
        sock.settimeout(remaining)
        try:
            data = sock.recv(65536)
        except TimeoutError:
            return False, bytes(received)
        except (ConnectionResetError, BrokenPipeError):
            return True, bytes(received)
        if not data:
            return True, bytes(received)
        received += data


def split_head(data: bytes) -> tuple[bytes, bytes]:
    """(status line + headers, everything after the blank line)."""
    head, sep, rest = data.partition(b"\r\n\r\n")
    assert sep, f"no end of headers in {data[:200]!r}"
    return head, rest


def dechunk(data: bytes) -> tuple[bytes, bool]:
    """Decode a chunked body: (payload, terminating chunk seen)."""
    out = bytearray()
    pos = 0
    while True:
        eol = data.find(b"\r\n", pos)
        if eol < 0:
            return bytes(out), False
        size = int(data[pos:eol].split(b";", 1)[0], 16)
        if size == 0:
            return bytes(out), data[eol + 2 : eol + 4] == b"\r\n"
        start = eol + 2
        if len(data) < start + size + 2:
            out += data[start : start + size]
            return bytes(out), False
        out += data[start : start + size]
        pos = start + size + 2
