"""Issue 4 on real servers: the repo's gunicorn.conf.py, metrics across workers, request ids."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from .servers import PROJECT_ROOT, Server, dev_server, gunicorn_server, http_get

CONFIG = Path(PROJECT_ROOT) / "gunicorn.conf.py"
RECEIVED = re.compile(
    rb"^synwsgi_http_server_requests_received_total"
    rb'\{method="GET",servlet="SlowUncancellableServlet"\} (\S+)$',
    re.M,
)
ACCESS_ID = re.compile(r" - (GET-\d+) - \S+ - \S+ - \{None\} Processed request: .* \"GET (\S+) HTTP/1\.1\"")


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
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
    }
    with gunicorn_server("wsgi:app", "sync", workers=2, config=CONFIG, env=env) as server:
        yield server


def _received(server: Server) -> float:
    status, _, body = http_get(server, "/metrics")
    assert status == 200
    match = RECEIVED.search(body)
    return float(match.group(1)) if match else 0.0


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
    # Whichever worker answers /metrics, the count covers both.
    for _ in range(4):
        assert _received(two_workers) - before == requests
    # prometheus-client writes one file per process: both workers counted.
    writers = {path.stem.rsplit("_", 1)[-1] for path in METRICS_DIRS[0].glob("counter_*.db")}
    assert len(writers) == 2, writers


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
