"""The notifier under real gunicorn workers: parked requests wake on `notify`,
and a client that leaves ends its wait, on gevent (the handler greenlet is
killed) and on gthread (the wait checks the cancellation flag between slices)."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import pytest
from integration.servers import Server, gunicorn_server

from ._client_helpers import raw_json

APP = "tests.homeserver._notifier_app:app"
pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module", params=["gevent", "gthread"])
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    with gunicorn_server(APP, request.param, workers=1, threads=40, ready_path="/waiters") as running:
        yield running


def park(server: Server, key: str, since: int, timeout_ms: int = 30_000) -> socket.socket:
    sock = socket.create_connection((server.host, server.port), timeout=10)
    sock.sendall(
        f"GET /wait?key={key}&since={since}&timeout={timeout_ms} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    )
    return sock


def answer(sock: socket.socket) -> dict[str, int]:
    data = b""
    while b"\r\n\r\n" not in data or not data.endswith(b"}"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    result: dict[str, int] = json.loads(body)
    return result


def waiters(server: Server) -> int:
    count: int = raw_json(server.url, "GET", "/waiters")[1]["waiters"]
    return count


def wait_for_waiters(server: Server, count: int, within: float) -> float:
    started = time.monotonic()
    while waiters(server) != count:
        assert time.monotonic() - started < within, (waiters(server), count)
        time.sleep(0.02)
    return time.monotonic() - started


def test_parked_requests_wake_and_leaving_clients_are_released(server: Server) -> None:
    key = f"room{time.monotonic_ns()}"
    staying = [park(server, key, 0) for _ in range(10)]
    leaving = [park(server, key, 0) for _ in range(10)]
    wait_for_waiters(server, 20, 5)
    for sock in leaving:
        sock.close()
    released_in = wait_for_waiters(server, 10, 1.0)  # the clients that left, within 1 s
    sent_at = time.monotonic()
    raw_json(server.url, "POST", f"/notify?key={key}&position=1")
    for sock in staying:
        assert answer(sock) == {"position": 1}
        sock.close()
    woken_in = time.monotonic() - sent_at
    assert woken_in < 0.5, woken_in
    wait_for_waiters(server, 0, 1)
    print(f"\n{server.kind}: released in {released_in * 1000:.0f} ms, woke 10 in {woken_in * 1000:.0f} ms")


def test_timeout_answers_normally(server: Server) -> None:
    started = time.monotonic()
    sock = park(server, f"quiet{time.monotonic_ns()}", 0, timeout_ms=300)
    assert answer(sock) == {"position": 0}
    assert 0.29 < time.monotonic() - started < 2
    sock.close()
