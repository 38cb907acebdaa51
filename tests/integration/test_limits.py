"""Issue point 4: body limits and keep-alive, over real sockets.

Serves ``_limited_app.py``: the showcase site with a 1 KiB body limit.

* A declared ``Content-Length`` over the limit gets 413 ``M_TOO_LARGE``
  before the client sent any of the body, and the connection is closed (the
  server must not wait for, or drain, a body it refused).
* A chunked upload that passes the limit gets 413 long before the client has
  sent it all, and the worker's memory does not grow with the upload.
* Keep-alive (gthread, gevent): 50 requests of different kinds on one
  connection each get their own, correct answer. gunicorn ``sync`` and the
  dev server close after every response (see ``test_cancellation.py``).

SIGTERM with requests in flight is in ``test_shutdown.py``.
"""

from __future__ import annotations

import json
import select
import time
from collections.abc import Callable
from urllib.parse import quote

import pytest

from ._limited_app import MAX_BODY
from .helpers import request_bytes, wait_closed
from .servers import Server, open_connection, read_response, worker_rss_kib

pytestmark = pytest.mark.integration

Measure = Callable[[str, float, str], None]

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def server_app() -> str:
    return "tests.integration._limited_app:app"


def _assert_too_large(status: int, body: bytes) -> None:
    assert status == 413, body
    error = json.loads(body)
    assert error["errcode"] == "M_TOO_LARGE", error
    assert f"(>{MAX_BODY})" in error["error"], error


def _post_headers(length: int) -> bytes:
    return request_bytes(
        "POST", "/_demo/echo", {"Content-Type": "application/json", "Content-Length": str(length)}
    )


# --------------------------------------------------------------------------
# Content-Length over the limit
# --------------------------------------------------------------------------


def test_declared_body_over_limit_is_413_before_body(any_server: Server, measure: Measure) -> None:
    with open_connection(any_server, timeout=5) as sock:
        started = time.monotonic()
        sock.sendall(_post_headers(4 * MAX_BODY))  # headers only: the body never comes
        resp = read_response(sock, max_body=64 * 1024)
        elapsed = time.monotonic() - started
    measure("413 after headers", elapsed * 1000, "ms")
    _assert_too_large(resp.status, resp.body)
    assert resp.headers.get("Content-Type") == "application/json"
    assert elapsed < 2, f"the 413 took {elapsed:.1f}s (did the server wait for the body?)"


def test_connection_closed_after_413(any_server: Server) -> None:
    """After refusing a declared body the server closes, instead of waiting to drain it."""
    with open_connection(any_server, timeout=5) as sock:
        sock.sendall(_post_headers(4 * MAX_BODY))
        fp = sock.makefile("rb")
        resp = read_response(fp, max_body=64 * 1024)
        fp.close()
        closed, extra = wait_closed(sock, 1.0)
    _assert_too_large(resp.status, resp.body)
    assert closed, (
        f"{any_server.name} kept the connection open for 1 s after the 413 "
        f"(response 'Connection: {resp.headers.get('Connection')}'); it would wait for "
        f"and drain the {4 * MAX_BODY}-byte body it refused"
    )
    assert extra == b""


def test_body_within_limit_is_accepted(any_server: Server) -> None:
    payload = json.dumps({"pad": "x" * (MAX_BODY - 20)}).encode()
    assert len(payload) <= MAX_BODY
    with open_connection(any_server, timeout=5) as sock:
        sock.sendall(_post_headers(len(payload)) + payload)
        resp = read_response(sock)
    assert resp.status == 200, resp
    assert json.loads(resp.body) == json.loads(payload)


# --------------------------------------------------------------------------
# Chunked uploads
# --------------------------------------------------------------------------


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _chunked_headers() -> bytes:
    return request_bytes(
        "POST", "/_demo/echo", {"Content-Type": "application/json", "Transfer-Encoding": "chunked"}
    )


def test_chunked_upload_within_limit_is_accepted(any_server: Server) -> None:
    payload = json.dumps({"chunked": True, "pad": "y" * 500}).encode()
    with open_connection(any_server, timeout=5) as sock:
        sock.sendall(_chunked_headers() + _chunk(payload[:100]) + _chunk(payload[100:]) + b"0\r\n\r\n")
        resp = read_response(sock)
    assert resp.status == 200, resp
    assert json.loads(resp.body) == json.loads(payload)


def test_chunked_upload_over_limit_is_413(any_server: Server, measure: Measure) -> None:
    (pid,) = any_server.worker_pids()
    baseline = worker_rss_kib(pid)
    peak = baseline
    budget = 16 * MiB
    piece = _chunk(b'{"pad": "' + b"z" * (64 * 1024) + b'"}')
    sent = 0
    with open_connection(any_server, timeout=5) as sock:
        sock.sendall(_chunked_headers())
        # Upload until the server answers (as a client watching for an early
        # response would), the server stops reading, or the budget is spent.
        try:
            while sent < budget:
                readable, _, _ = select.select([sock], [], [], 0)
                if readable:
                    break
                sock.sendall(piece)
                sent += len(piece)
                peak = max(peak, worker_rss_kib(pid))
            else:
                sock.sendall(b"0\r\n\r\n")
        except (TimeoutError, BrokenPipeError, ConnectionResetError):
            pass  # the server closed or stopped reading: fine, the answer is what counts
        sock.settimeout(5)
        resp = read_response(sock, max_body=64 * 1024)
    peak = max(peak, worker_rss_kib(pid))
    measure("chunked upload sent before 413", sent / 1024, "KiB")
    measure("worker RSS growth (chunked upload)", (peak - baseline) / 1024, "MiB")
    _assert_too_large(resp.status, resp.body)
    assert sent < budget, f"the server read the whole {budget // MiB} MiB upload before answering"
    assert peak - baseline < 4 * 1024, f"worker RSS grew {peak - baseline} KiB during the upload"


# --------------------------------------------------------------------------
# Keep-alive
# --------------------------------------------------------------------------


def test_keepalive_fifty_requests_on_one_connection(keepalive_server: Server) -> None:
    with open_connection(keepalive_server, timeout=5) as sock:
        fp = sock.makefile("rb")
        for i in range(50):
            kind = i % 4
            if kind == 0:
                sock.sendall(request_bytes("GET", "/_matrix/client/versions"))
                resp = read_response(fp)
                assert resp.status == 200 and "versions" in json.loads(resp.body), (i, resp)
            elif kind == 1:
                room, key = f"!room{i}:example.org", f"@user{i}:example.org"
                sock.sendall(
                    request_bytes(
                        "GET", f"/_matrix/client/v3/rooms/{quote(room)}/state/m.room.member/{quote(key)}"
                    )
                )
                resp = read_response(fp)
                assert resp.status == 200, (i, resp)
                assert json.loads(resp.body) == {
                    "room_id": room,
                    "event_type": "m.room.member",
                    "state_key": key,
                }, i
            elif kind == 2:
                payload = json.dumps({"n": i}).encode()
                sock.sendall(
                    request_bytes(
                        "PUT",
                        f"/_matrix/client/v3/rooms/!r{i}:x/send/m.room.message/txn{i}",
                        {"Content-Type": "application/json", "Content-Length": str(len(payload))},
                        payload,
                    )
                )
                resp = read_response(fp)
                assert resp.status == 200, (i, resp)
                assert json.loads(resp.body) == {
                    "room_id": f"!r{i}:x",
                    "event_type": "m.room.message",
                    "txn_id": f"txn{i}",
                    "content": {"n": i},
                }, i
            else:
                sock.sendall(request_bytes("GET", f"/_demo/error/nope{i}"))
                resp = read_response(fp)
                assert resp.status == 404, (i, resp)
                assert json.loads(resp.body)["errcode"] == "M_NOT_FOUND", i
                assert f"nope{i}" in json.loads(resp.body)["error"], i
            assert resp.complete, i
            assert resp.headers.get("Connection", "keep-alive").lower() != "close", (i, resp.headers)
        fp.close()
