"""Issue point 2: streaming under every server (the showcase app's ``/_demo/stream``).

``/_demo/stream?bytes=N`` is a JSON array of 64 KiB strings produced by a
generator whose ``finally`` counts ``streams_closed`` in ``/_demo/stats``.

* the body is chunked and complete (terminating chunk) over HTTP/1.1;
* a client that leaves mid-stream makes the server ``close()`` the iterator
  (``streams_closed`` + 1) and the worker keeps serving;
* a slow reader of a 256 MiB stream does not make the worker buffer: its RSS
  stays within a few MiB (backpressure, constant memory);
* an HTTP/1.0 client gets a close-delimited body;
* HEAD never sends a body, the dev server included.

The exception-mid-stream case is in ``test_stream_errors.py``.
"""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Callable

import pytest

from .helpers import KEEPALIVE_KINDS, demo_stats, request_bytes, split_head, wait_closed, wait_for_stat
from .servers import (
    Server,
    http_get,
    open_connection,
    raw_request,
    read_response,
    worker_rss_kib,
)

pytestmark = pytest.mark.integration

Measure = Callable[[str, float, str], None]

MiB = 1024 * 1024
#: Allowed worker RSS growth while streaming 256 MiB to a slow reader.
RSS_BOUND_KIB = 10 * 1024


def _check_stream_json(body: bytes, at_least: int) -> None:
    items = json.loads(body)
    assert isinstance(items, list) and items
    assert len(body) >= at_least
    assert all(item == "x" * (64 * 1024 - 3) for item in items[:3])


def test_stream_is_chunked_and_complete(any_server: Server) -> None:
    size = 300_000
    with open_connection(any_server, timeout=5) as sock:
        sock.sendall(request_bytes("GET", f"/_demo/stream?bytes={size}"))
        resp = read_response(sock)
    assert resp.status == 200
    assert resp.headers.get("Transfer-Encoding", "").lower() == "chunked", resp.headers
    assert "Content-Length" not in resp.headers
    assert resp.complete is True, "no terminating chunk"
    assert resp.headers.get("Content-Type") == "application/json"
    _check_stream_json(resp.body, size)


def test_disconnect_mid_stream_closes_iterator(any_server: Server, measure: Measure) -> None:
    workers = any_server.worker_pids()
    before = demo_stats(any_server)
    with open_connection(any_server, timeout=5) as sock:
        sock.sendall(request_bytes("GET", f"/_demo/stream?bytes={1024 * MiB}"))
        received = 0
        while received < 1 * MiB:
            data = sock.recv(65536)
            assert data, "the server ended the 1 GiB stream early"
            received += len(data)
    closed_at = time.monotonic()
    after, elapsed = wait_for_stat(
        any_server, "streams_closed", before["streams_closed"], since=closed_at, timeout=5
    )
    measure("disconnect -> iterator closed", elapsed * 1000, "ms")
    assert after["streams_closed"] == before["streams_closed"] + 1
    # The worker keeps serving others (and is the same worker).
    status, _, body = http_get(any_server, "/_matrix/client/versions", timeout=5)
    assert status == 200 and b"versions" in body
    assert any_server.worker_pids() == workers


def test_slow_reader_constant_memory(any_server: Server, measure: Measure) -> None:
    (pid,) = any_server.worker_pids()
    # Warm up the streaming path once, so first-use allocations are not counted.
    status, _, body = http_get(any_server, f"/_demo/stream?bytes={4 * MiB}", timeout=10)
    assert status == 200 and len(body) >= 4 * MiB
    time.sleep(0.2)
    baseline = worker_rss_kib(pid)
    peak = baseline
    total = 256 * MiB
    conn = http.client.HTTPConnection(any_server.host, any_server.port, timeout=10)
    try:
        conn.request("GET", f"/_demo/stream?bytes={total}")
        resp = conn.getresponse()
        assert resp.status == 200
        received = 0
        # A slow reader: 256 KiB every 100 ms for 3 s (the generator could
        # produce hundreds of MiB meanwhile if nothing pushed back).
        for _ in range(30):
            received += len(resp.read(256 * 1024))
            time.sleep(0.1)
            peak = max(peak, worker_rss_kib(pid))
        # Then the rest at full speed, sampling now and then.
        next_sample = received
        while True:
            data = resp.read(MiB)  # raises IncompleteRead if the stream is cut
            if not data:
                break
            received += len(data)
            if received >= next_sample:
                peak = max(peak, worker_rss_kib(pid))
                next_sample += 16 * MiB
    finally:
        conn.close()
    growth = peak - baseline
    measure("worker RSS growth (256 MiB slow read)", growth / 1024, "MiB")
    assert received >= total
    assert growth < RSS_BOUND_KIB, f"{any_server.name}: RSS {baseline} KiB -> peak {peak} KiB"


def test_http10_client_gets_close_delimited_body(any_server: Server) -> None:
    size = 200_000
    started = time.monotonic()
    data = raw_request(
        any_server, request_bytes("GET", f"/_demo/stream?bytes={size}", version="HTTP/1.0"), timeout=5
    )
    elapsed = time.monotonic() - started
    head, body = split_head(data)
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    assert status_line.split(" ")[1] == "200", status_line
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in header_lines)}
    assert "chunked" not in headers.get("transfer-encoding", ""), headers
    assert "content-length" not in headers, headers
    assert elapsed < 4, "the server did not close the connection to end the body"
    _check_stream_json(body, size)


@pytest.mark.parametrize("path", ["/_matrix/client/versions", "/_demo/stream?bytes=300000"])
def test_head_sends_no_body(any_server: Server, path: str) -> None:
    data = raw_request(any_server, request_bytes("HEAD", path, {"Connection": "close"}), timeout=3)
    head, rest = split_head(data)
    assert head.startswith(b"HTTP/1.1 200"), head
    assert rest == b"", f"{any_server.name} sent {len(rest)} body bytes for HEAD: {rest[:60]!r}"
    if any_server.kind in KEEPALIVE_KINDS:
        # On a kept-alive connection the next response must start right after the headers.
        with open_connection(any_server, timeout=5) as sock:
            sock.sendall(request_bytes("HEAD", path) + request_bytes("GET", "/_matrix/client/versions"))
            fp = sock.makefile("rb")
            first = read_response(fp, head=True)
            second = read_response(fp)
            fp.close()
        assert first.status == 200
        assert second.status == 200 and b"versions" in second.body, second


def test_stream_then_connection_state(any_server: Server) -> None:
    """After a complete stream the server keeps (gthread/gevent) or closes (sync/dev) cleanly."""
    with open_connection(any_server, timeout=5) as sock:
        fp = sock.makefile("rb")
        sock.sendall(request_bytes("GET", "/_demo/stream?bytes=100000"))
        resp = read_response(fp)
        assert resp.complete
        if any_server.kind in KEEPALIVE_KINDS:
            sock.sendall(request_bytes("GET", "/_matrix/client/versions"))
            again = read_response(fp)
            assert again.status == 200 and b"versions" in again.body
        else:
            closed, extra = wait_closed(sock, 3)
            assert closed and extra == b""
        fp.close()
