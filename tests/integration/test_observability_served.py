"""Issue 4 on real servers: the repo's gunicorn.conf.py, metrics across workers, request ids."""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .servers import PROJECT_ROOT, Server, dev_server, gunicorn_server, http_get, metrics_get

CONFIG = Path(PROJECT_ROOT) / "gunicorn.conf.py"
RECEIVED = re.compile(
    rb"^synapse_http_server_requests_received_total"
    rb'\{method="GET",server_name="",servlet="SlowUncancellableServlet"\} (\S+)$',
    re.M,
)
REQUEST_ID = r"GET-([a-z2-7]{5})-\d+"
ACCESS_ID = re.compile(
    r" - (GET-[a-z2-7]{5}-\d+) - \S+ - \S+ - \{None\} Processed request: .* \"GET (\S+) HTTP/1\.1\""
)


METRICS_DIRS: list[Path] = []


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    # Sync workers take one request at a time, so concurrent requests are
    # bound to reach both.
    metrics_dir = tmp_path_factory.mktemp("prometheus")
    METRICS_DIRS[:] = [metrics_dir]
    env = {
        "SYNWSGI_WORKERS": "2",
        "SYNWSGI_WORKER_CLASS": "sync",
        "SYNWSGI_THREADS": "1",  # else gunicorn turns sync into gthread
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
    }
    with gunicorn_server("wsgi:app", "sync", workers=2, config=CONFIG, env=env) as server:
        yield server


def _received(server: Server) -> float:
    status, body = metrics_get(server)
    assert status == 200
    match = RECEIVED.search(body)
    return float(match.group(1)) if match else 0.0


def _wait_received(server: Server, count: float, timeout: float = 10.0) -> float:
    """The count once it reaches `count` (a worker writes its batch within 0.25 s)."""
    deadline = time.monotonic() + timeout
    while (seen := _received(server)) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return seen


def test_metrics_add_up_across_two_workers(two_workers: Server) -> None:
    before = _received(two_workers)
    requests = 6
    statuses: list[int] = []
    threads = [
        threading.Thread(
            target=lambda: statuses.append(http_get(two_workers, "/_demo/slow-uncancellable?seconds=0.3")[0])
        )
        for _ in range(requests)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert statuses == [200] * requests
    # The arbiter's listener adds up both workers' files.
    assert _wait_received(two_workers, before + requests) - before == requests
    # prometheus-client writes one file per process: both workers counted.
    writers = {path.stem.rsplit("_", 1)[-1] for path in METRICS_DIRS[0].glob("counter_*.db")}
    assert len(writers) == 2, writers


def test_metrics_are_not_on_the_public_port(two_workers: Server) -> None:
    status, _, body = http_get(two_workers, "/metrics")
    assert status == 404, body[:200]
    status, body = metrics_get(two_workers)
    assert status == 200
    assert b"# TYPE synapse_http_server_requests_received_total counter" in body
    line = two_workers.wait_for_log("Serving metrics at http://127.0.0.1:")
    assert "/metrics" in line


def test_request_ids_are_unique_across_workers_and_a_restart(two_workers: Server) -> None:
    def ids_of(paths: list[str], since: int) -> dict[str, str]:
        threads = [threading.Thread(target=http_get, args=(two_workers, path)) for path in paths]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        for path in paths:
            two_workers.wait_for_log(f"{path} HTTP", since=since, timeout=10)
        found = {m[2]: m[1] for m in ACCESS_ID.finditer(two_workers.log(since=since))}
        assert set(paths) <= set(found), two_workers.log(since=since)[-2000:]
        return {path: found[path] for path in paths}

    # Sync workers answer one request at a time: four slow ones reach both.
    before = ids_of(
        [f"/_demo/slow-uncancellable?seconds=0.3&i={i}" for i in range(4)], two_workers.log_mark()
    )
    tags = {re.fullmatch(REQUEST_ID, request_id)[1] for request_id in before.values()}  # type: ignore[index]
    assert len(tags) == 2, before
    # A restart (HUP: gunicorn replaces both workers; the counters start again at 0).
    mark = two_workers.log_mark()
    os.kill(two_workers.pid, signal.SIGHUP)
    booted = re.compile(r"Worker \d+: request ids GET-([a-z2-7]{5})-<n>")
    deadline = time.monotonic() + 20
    while len(booted.findall(two_workers.log(since=mark))) < 2:
        assert time.monotonic() < deadline, two_workers.log(since=mark)
        time.sleep(0.1)
    time.sleep(0.5)  # the old workers finish leaving
    after = ids_of([f"/_demo/slow-uncancellable?seconds=0.3&j={i}" for i in range(4)], two_workers.log_mark())
    new_tags = {re.fullmatch(REQUEST_ID, request_id)[1] for request_id in after.values()}  # type: ignore[index]
    assert new_tags <= set(booted.findall(two_workers.log(since=mark)))
    assert not new_tags & tags, (before, after)
    every = [*before.values(), *after.values()]
    assert len(set(every)) == len(every), every


def test_access_lines_reach_stderr_with_the_default_config(two_workers: Server) -> None:
    mark = two_workers.log_mark()
    status, _, _ = http_get(two_workers, "/_matrix/client/versions?access_token=hunter2")
    assert status == 200
    line = two_workers.wait_for_log(re.compile(r"Processed request: .*versions"), since=mark, timeout=10)
    assert "access_token=<redacted>" in line
    assert "hunter2" not in two_workers.log()


@pytest.mark.parametrize("worker", ["gevent", "pywsgi", "gthread"])
def test_concurrent_requests_get_distinct_ids(worker: str) -> None:
    env = {"SYNWSGI_WORKERS": "1"}
    with gunicorn_server("wsgi:app", worker, workers=1, threads=8, config=CONFIG, env=env) as server:
        mark = server.log_mark()
        paths = [f"/_demo/slow?seconds=0.3&n={i}" for i in range(8)]
        threads = [threading.Thread(target=http_get, args=(server, path)) for path in paths]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        for i in range(len(paths)):
            server.wait_for_log(f"n={i} HTTP", since=mark, timeout=10)
        lines = server.log(since=mark)
        found = {m.group(2): m.group(1) for m in ACCESS_ID.finditer(lines) if "/_demo/slow" in m.group(2)}
        assert set(found) == set(paths), lines[-2000:]
        assert len(set(found.values())) == len(paths), found


def test_dev_server_logs_no_secret() -> None:
    with dev_server("tests.integration._logged_app:app") as server:
        mark = server.log_mark()
        status, _, _ = http_get(server, "/_matrix/client/versions?access_token=hunter2&client_secret=s3")
        assert status == 200
        line = server.wait_for_log(re.compile(r"Processed request: .*versions"), since=mark, timeout=10)
        assert "access_token=<redacted>" in line and "client_secret=<redacted>" in line
        assert "hunter2" not in server.log() and "s3\n" not in server.log()
