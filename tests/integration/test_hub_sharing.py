"""One keep-alive connection cannot hold a gevent worker (issue 19: the p99 "stall").

gunicorn's gevent worker reads a connection's next request right after
answering one, and a read that finds bytes waiting does not yield to the hub.
A client whose next request is always there (under load: it sends it while the
worker still writes the access line; here: pipelined) was served again and
again while no other connection was even accepted. A second client must now be
answered while the first one's requests are still being served.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .servers import PROJECT_ROOT, Server, gunicorn_server

CONFIG = Path(PROJECT_ROOT) / "gunicorn.conf.py"
REQUEST = b"GET /_matrix/client/versions HTTP/1.1\r\nHost: t\r\n\r\n"
PIPELINED = 3000
STATUS = b"HTTP/1.1 200 "


@pytest.fixture(scope="module")
def gevent_worker() -> Iterator[Server]:
    env = {"SYNWSGI_WORKERS": "1", "SYNWSGI_LOG_LEVEL": "warning"}
    with gunicorn_server("wsgi:app", "gevent", workers=1, config=CONFIG, env=env) as server:
        yield server


class PipelinedClient:
    """Sends `PIPELINED` requests at once and reads the answers as they come."""

    def __init__(self, server: Server) -> None:
        self.sock = socket.create_connection((server.host, server.port), timeout=60)
        self.answers = 0
        self.first = threading.Event()
        self.done_at = 0.0
        self._carry = b""
        self.reader = threading.Thread(target=self._read, daemon=True)

    def start(self) -> None:
        self.reader.start()
        self.sock.sendall(REQUEST * PIPELINED)

    def _read(self) -> None:
        while self.answers < PIPELINED:
            data = self.sock.recv(1 << 20)
            if not data:
                break
            data = self._carry + data
            self.answers += data.count(STATUS)
            self._carry = data[-len(STATUS) :]
            self.first.set()
        self.done_at = time.perf_counter()


def test_a_second_client_is_answered_while_a_pipelining_one_is_served(gevent_worker: Server) -> None:
    busy = PipelinedClient(gevent_worker)
    busy.start()
    assert busy.first.wait(30)
    started = time.perf_counter()
    with socket.create_connection((gevent_worker.host, gevent_worker.port), timeout=60) as other:
        other.sendall(REQUEST)
        answer = other.recv(65536)
    other_at = time.perf_counter()
    busy.reader.join(60)
    busy.sock.close()
    assert answer.startswith(STATUS)
    assert busy.answers == PIPELINED
    # The pipelining client keeps the worker busy for several hundred ms;
    # the other one waits a few ms, not until it is done.
    assert other_at < busy.done_at, (other_at - started, busy.done_at - started)
    assert other_at - started < 0.5 * (busy.done_at - started), (other_at - started, busy.done_at - started)
