"""`HttpTransactionCache` under real gunicorn workers (gevent and gthread), on 127.0.0.1.

Twelve clients retry the same transaction at once: the send runs once, every
client gets its response, and the retries wait together (under gevent the
waits yield to the hub; a real lock would hang the worker).
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest

from tests.integration.servers import Server, gunicorn_server, http_request

APP = "tests._txn_served_app:app"
HEADERS = {"Authorization": "Bearer alice-token", "Content-Type": "application/json"}
CLIENTS = 12


def _put_all(server: Server, txn_id: str) -> tuple[list[tuple[int, Any]], float]:
    results: list[tuple[int, Any]] = []
    lock = threading.Lock()
    start = threading.Barrier(CLIENTS)

    def client() -> None:
        start.wait()
        status, _, body = http_request(server, "PUT", f"/_matrix/client/v3/send/{txn_id}", HEADERS, b"{}")
        with lock:
            results.append((status, json.loads(body)))

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results, time.monotonic() - began


@pytest.mark.parametrize("worker", ["gevent", "pywsgi", "gthread"])
def test_concurrent_retries_run_once_on_a_real_worker(worker: str) -> None:
    with gunicorn_server(
        APP, worker, workers=1, threads=CLIENTS + 4, ready_path="/_matrix/client/v3/runs"
    ) as server:
        results, elapsed = _put_all(server, "t1")
        assert len(results) == CLIENTS
        assert {status for status, _ in results} == {200}
        assert len({json.dumps(body, sort_keys=True) for _, body in results}) == 1
        assert results[0][1]["event_id"] == "$t1-1"
        # One half-second send, all retries answered together (serialised sends would take 6 s).
        assert elapsed < 3.0, elapsed
        status, _, body = http_request(server, "GET", "/_matrix/client/v3/runs")
        assert status == 200
        assert json.loads(body)["runs"] == 1
        again, _ = _put_all(server, "t2")
        assert {body["event_id"] for _, body in again} == {"$t2-2"}
