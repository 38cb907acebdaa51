"""Issue point 4: SIGTERM with requests in flight (gunicorn workers).

Three ``/_demo/slow-uncancellable?seconds=2`` requests are in flight when the
master gets SIGTERM; all three must still get their 200 (within
``graceful_timeout`` = 5 s), and the server must then exit.

gunicorn ``sync`` runs one request per worker, so it gets 3 workers here; the
others run one worker. The werkzeug dev server has no graceful shutdown (its
process dies on SIGTERM), so the point does not apply to it.

Each test starts and stops its own server (the SIGTERM ends it).
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import signal
import time

import pytest

from .servers import DEFAULT_APP, Server, gunicorn_server, http_get, pid_alive

pytestmark = pytest.mark.integration

GRACEFUL_TIMEOUT = 5


def _slow(server: Server) -> tuple[int, bytes, float]:
    started = time.monotonic()
    status, _, body = http_get(server, "/_demo/slow-uncancellable?seconds=2", timeout=15)
    return status, body, time.monotonic() - started


@pytest.mark.parametrize("worker", ["sync", "gthread", "gevent", "pywsgi"])
def test_sigterm_lets_in_flight_requests_finish(worker: str) -> None:
    workers = 3 if worker == "sync" else 1
    with gunicorn_server(
        DEFAULT_APP, worker, workers=workers, threads=4, graceful_timeout=GRACEFUL_TIMEOUT, log_level="debug"
    ) as server:
        worker_pids = server.worker_pids()
        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            futures = [pool.submit(_slow, server) for _ in range(3)]
            time.sleep(0.7)  # all three are being handled
            assert not any(f.done() for f in futures), [f.result() for f in futures if f.done()]
            signalled = time.monotonic()
            os.kill(server.pid, signal.SIGTERM)
            results = [f.result(timeout=GRACEFUL_TIMEOUT + 10) for f in futures]
        for status, body, elapsed in results:
            assert status == 200, (status, body, server.log_tail(30))
            assert json.loads(body) == {"slept": 2.0}
            assert 1.9 <= elapsed < GRACEFUL_TIMEOUT + 1, elapsed
        # The server then exits on its own, within the graceful timeout.
        server.process.wait(timeout=GRACEFUL_TIMEOUT + 3)
        exited_after = time.monotonic() - signalled
        assert exited_after < GRACEFUL_TIMEOUT + 3, exited_after
        assert not any(pid_alive(pid) for pid in worker_pids)
        log = server.log()
        assert "Traceback" not in log, log
