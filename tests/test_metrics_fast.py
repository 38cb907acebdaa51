"""ServerMetrics in prometheus' multiprocess mode: batched updates lose nothing.

Multiprocess mode is chosen when prometheus_client is imported, so each test
runs a child Python with `PROMETHEUS_MULTIPROC_DIR` set (as gunicorn.conf.py
does), serves requests through Werkzeug's test Client, and reads the numbers
back the way `/metrics` does: `MultiProcessCollector` over the directory.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector

# Serves the same requests through two sites: metrics prefixed `batched`
# (the default batch interval) and `direct` (batch_interval=0, every update
# written at once); `{finish}` decides how the child ends.
CHILD = """
import json, sys, time
from prometheus_client import CollectorRegistry
from werkzeug.test import Client
from synwsgi import JsonResource, Site, SynapseError
from synwsgi.observability.metrics import ServerMetrics

def fail(request):
    raise SynapseError(403, "no", "M_FORBIDDEN")

resource = JsonResource()
resource.register_paths("GET", ["/ok"], lambda request: (200, {{"ok": True}}), "OkServlet")
resource.register_paths("POST", ["/ok"], lambda request: (200, {{}}), "OkServlet")
resource.register_paths("GET", ["/fail"], fail, "FailServlet")
batched = ServerMetrics(CollectorRegistry(), prefix="batched", batch_interval={interval})
direct = ServerMetrics(CollectorRegistry(), prefix="direct", batch_interval=0)
assert batched._sink is not None and direct._sink is None
clients = [Client(Site({{"/": resource}}, hooks=[m])) for m in (batched, direct)]
for client in clients:
    for path in ("/ok", "/ok", "/fail", "/nope", "/ok"):
        client.get(path).close()
    client.post("/ok").close()
    client.open("/ok", method="BREW").close()
{finish}
"""


def _run_child(tmp_path: Path, interval: float, finish: str) -> dict[str, float]:
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    script = CHILD.format(interval=interval, finish=textwrap.dedent(finish))
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout) if done.stdout.strip() else {}


def _collected(metrics_dir: Path) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(metrics_dir))  # type: ignore[no-untyped-call]
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for metric in registry.collect()
        for sample in metric.samples
    }


def _by_prefix(samples: dict[tuple[str, Any], float], prefix: str) -> dict[tuple[str, Any], float]:
    """Samples of one ServerMetrics, prefix stripped; timings and CPU left out
    (they differ between two runs), their counts kept."""
    kept: dict[tuple[str, Any], float] = {}
    for (name, labels), value in samples.items():
        if not name.startswith(prefix + "_"):
            continue
        short = name[len(prefix) + 1 :]
        if "ru_" in short or short.endswith("_sum") or "_bucket" in short or short.endswith("_created"):
            continue
        kept[(short, labels)] = value
    return kept


def test_batched_updates_add_up_to_the_direct_ones_at_exit(tmp_path: Path) -> None:
    # The child never flushes: what it batched must be written when it exits
    # (a long interval, so no timer fires first).
    _run_child(tmp_path, 60.0, "")
    samples = _collected(tmp_path / "prometheus")
    batched, direct = _by_prefix(samples, "batched"), _by_prefix(samples, "direct")
    assert batched == direct
    assert batched[("responses_total", (("code", "200"), ("method", "GET"), ("server_name", "")))] == 3
    assert batched[("responses_total", (("code", "404"), ("method", "GET"), ("server_name", "")))] == 1
    assert batched[("responses_total", (("code", "403"), ("method", "GET"), ("server_name", "")))] == 1
    count_labels = (
        ("code", "200"),
        ("method", "GET"),
        ("server_name", ""),
        ("servlet", "OkServlet"),
        ("tag", "synwsgi"),
    )
    assert batched[("response_time_seconds_count", count_labels)] == 3
    received = {labels: v for (name, labels), v in batched.items() if name == "requests_received_total"}
    assert received[(("method", "GET"), ("server_name", ""), ("servlet", "OkServlet"))] == 3
    assert (
        received[(("method", "GET"), ("server_name", ""), ("servlet", "unrecognised_request_handler"))] == 1
    )
    assert (
        received[(("method", "OTHER"), ("server_name", ""), ("servlet", "unrecognised_request_handler"))] == 1
    )
    size = batched[
        (
            "response_size_total",
            (("method", "GET"), ("server_name", ""), ("servlet", "OkServlet"), ("tag", "synwsgi")),
        )
    ]
    assert size == 3 * len(b'{"ok":true}')
    in_flight = {labels: v for (name, labels), v in batched.items() if name == "in_flight_requests_count"}
    assert in_flight and set(in_flight.values()) == {0.0}


def test_batched_buckets_match_observe(tmp_path: Path) -> None:
    # Same observations through observe() and through the batch: same buckets.
    finish = """
    sink = batched._sink
    child = batched._code_children(batched._record("GET", "X", "synwsgi"), "GET", "X", 200)
    for value in [0.0, 0.0005, 0.001, 0.0011, 0.3, 7.0, 61.0, 1e9]:
        direct.collectors.response_time.labels("GET", "X", "synwsgi", "200", "").observe(value)
        with sink.lock:
            child.observe(value)
            sink.dirty_codes.add(child)
    sink.flush()
    """
    _run_child(tmp_path, 60.0, finish)
    samples = _collected(tmp_path / "prometheus")

    def buckets(prefix: str) -> dict[Any, float]:
        return {
            labels: value
            for (name, labels), value in samples.items()
            if name in (f"{prefix}_response_time_seconds_bucket", f"{prefix}_response_time_seconds_sum")
            and ("servlet", "X") in labels
        }

    assert len(buckets("batched")) == 16  # 15 buckets (+Inf included) and the sum
    assert buckets("batched") == buckets("direct"), "cumulative buckets and sums equal observe()'s"


def test_a_batch_is_written_within_the_interval_without_a_flush(tmp_path: Path) -> None:
    # While the child is still running (no exit, no explicit flush), the
    # timer writes the batch: another process reading the files sees it.
    finish = """
    import os
    from prometheus_client import CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    def responses():
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        return sum(
            s.value for m in registry.collect() for s in m.samples
            if s.name == "batched_responses_total"
        )

    before = responses()
    time.sleep(0.5)
    after = responses()
    print(json.dumps({"before": before, "after": after}))
    sys.stdout.flush()
    os._exit(0)  # no atexit: only the timer can have written the batch
    """
    seen = _run_child(tmp_path, 0.1, finish)
    assert seen["after"] == 7
    assert seen["before"] < 7, "the batch was pending, not written per request"


def test_in_flight_shows_a_long_request_within_the_interval(tmp_path: Path) -> None:
    finish = """
    import threading
    from prometheus_client import CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    def in_flight():
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        return sum(
            s.value for m in registry.collect() for s in m.samples
            if s.name == "batched_in_flight_requests_count" and s.labels.get("servlet") == "Slow"
        )

    resource.register_paths("GET", ["/slow"], lambda request: (time.sleep(0.6), (200, {}))[1], "Slow")
    request = threading.Thread(target=lambda: clients[0].get("/slow").close())
    request.start()
    time.sleep(0.35)
    during = in_flight()
    request.join()
    time.sleep(0.35)
    print(json.dumps({"during": during, "after": in_flight()}))
    """
    seen = _run_child(tmp_path, 0.1, finish)
    assert seen == {"during": 1.0, "after": 0.0}
