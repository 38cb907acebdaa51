"""Issue point 2: an exception mid-stream, on every server.

The showcase app has no endpoint that fails half-way, so these tests serve
``tests/integration/_failing_app.py`` (a ``synwsgi.Site`` whose servlet
returns a generator that yields 256 KiB and then raises).

Expected on every server: the bytes already produced arrive, then the
connection is closed *without* the terminating ``0\\r\\n\\r\\n`` (so the
client can tell the body is truncated), the failure is logged exactly once
(one traceback), and the same worker keeps serving.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest

from ._failing_app import PIECE, PIECES_BEFORE_FAILURE
from .helpers import request_bytes, wait_closed
from .servers import Server, http_get, open_connection, read_response

pytestmark = pytest.mark.integration

TRACEBACK = "Traceback (most recent call last)"


@pytest.fixture(scope="module")
def server_app() -> str:
    return "tests.integration._failing_app:app"


def _token() -> str:
    return uuid.uuid4().hex[:12]


def test_exception_mid_stream_drops_connection(any_server: Server) -> None:
    workers = any_server.worker_pids()
    token = _token()
    mark = any_server.log_mark()
    started = time.monotonic()
    with open_connection(any_server, timeout=5) as sock:
        sock.sendall(request_bytes("GET", f"/_test/fail-mid-stream?token={token}"))
        fp = sock.makefile("rb")
        resp = read_response(fp)
        fp.close()
        closed, extra = wait_closed(sock, 3)
    elapsed = time.monotonic() - started
    assert resp.status == 200
    assert resp.headers.get("Transfer-Encoding", "").lower() == "chunked", resp.headers
    # What was produced before the failure arrived ...
    assert resp.body.startswith(b"[" + PIECE[:100])
    assert len(resp.body) >= (PIECES_BEFORE_FAILURE - 1) * len(PIECE), len(resp.body)
    # ... and then the connection was dropped, without the terminating chunk.
    assert resp.complete is False, "the truncated body ended with a terminating chunk"
    assert closed and extra == b"", f"connection not closed after the failure (got {extra[:80]!r})"
    assert elapsed < 4, f"took {elapsed:.1f}s"

    # Logged exactly once: one traceback, one toolkit error line.
    any_server.wait_for_log(f"RuntimeError: boom-mid-stream token={token}", since=mark)
    time.sleep(0.5)  # anything the server itself would log comes right after
    log = any_server.log(since=mark)
    assert log.count(TRACEBACK) == 1, log
    assert log.count(f"boom-mid-stream token={token}") == 1, log
    assert log.count("Failed while sending the response body") == 1, log
    assert "[ERROR]" not in log, log  # gunicorn did not log it a second time

    # The same worker keeps serving.
    status, _, body = http_get(any_server, "/_test/ok", timeout=5)
    assert (status, json.loads(body)) == (200, {"ok": True})
    assert any_server.worker_pids() == workers


def test_exception_before_first_byte_is_a_500(any_server: Server) -> None:
    token = _token()
    mark = any_server.log_mark()
    with open_connection(any_server, timeout=5) as sock:
        sock.sendall(request_bytes("GET", f"/_test/fail-first-piece?token={token}"))
        resp = read_response(sock)
    assert resp.status == 500, resp
    assert resp.complete is True
    assert json.loads(resp.body)["errcode"] == "M_UNKNOWN"
    assert b"boom" not in resp.body
    any_server.wait_for_log(f"RuntimeError: boom-first-piece token={token}", since=mark)
    time.sleep(0.3)
    log = any_server.log(since=mark)
    assert log.count(TRACEBACK) == 1, log


def test_still_serving_after_failures(any_server: Server) -> None:
    assert any_server.running()
    for _ in range(3):
        status, _, _ = http_get(any_server, "/_test/ok", timeout=5)
        assert status == 200
