"""Group h: a small request's latency while big canonical JSON bodies are sent.

One `gunicorn -k gevent -w 1` worker (everything shares one hub). Two client
threads fetch a ~20 MiB canonical JSON body (`/_bench/large-cached`, encoded
incrementally by synwsgi) back to back; meanwhile a probe sends the small
state-route GET on a keep-alive connection every `PROBE_INTERVAL_S` and
records each round trip. The row is the worst round trip over the run (and
the median as a second row): what a small client waits behind the big ones.

Variants are separate servers of the same app:

* `synwsgi (default)`: the app as shipped (`bench.peers.synwsgi_app:app`);
* `synwsgi, yield by sleep(0)`: the same app whose big-JSON body yields with
  `gevent.sleep(0)` instead of `gevent.idle()` (`bench/peers/synwsgi_sleep0.py`),
  kept as the evidence for the policy: sleep(0) is a loop callback, run
  before the loop polls sockets again, so two big writers hand the hub to
  each other and the small request's socket is not even looked at until
  they finish (~100 ms); idle() waits until nothing else is pending;
* `synwsgi, body built per request`: the same app, the two clients fetching
  `/_bench/large-built?items=100000`, 100 000 events built for each request
  (cooperating every 1 000, as the showcase's `/_demo/large` does), as a real
  `/sync` builds its body: the garbage collector's full collections over the
  bodies alive and freeing each body once sent are what stalled the worker;
* `..., gc_pacing=False`: the same without `ServerConfig.gc_pacing`
  (`app_unpaced`), the evidence for it.
"""

from __future__ import annotations

import contextlib
import http.client
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from canonicaljson import encode_canonical_json

from bench.hubstall import big_json_reference, check_variant, running
from bench.inproc import STATE_CASE
from bench.model import Failure, Group, Row, Target, guarded, row_from_runs
from bench.peers.common import build_events
from bench.servers import HOST
from bench.streaming import TransferError, fetch_discard
from bench.timing import rotate_rounds

DEFAULT = "synwsgi (default)"
SLEEP0 = "synwsgi, yield by sleep(0)"
BUILT = "synwsgi, body built per request"
BUILT_UNPACED = "synwsgi, body built per request, gc_pacing=False"
VARIANTS = {
    DEFAULT: "bench.peers.synwsgi_app:app",
    SLEEP0: "bench.peers.synwsgi_sleep0:app",
    BUILT: "bench.peers.synwsgi_app:app",
    BUILT_UNPACED: "bench.peers.synwsgi_app:app_unpaced",
}
#: Events of the body built per request: the showcase's `/_demo/large?items=100000`.
BUILT_ITEMS = 100_000
LARGE_BUILT_PATH = "/_bench/large-built"  # as in bench/peers/synwsgi_app.py
LIMIT_MS = 20.0
BIG_CLIENTS = 2
PROBE_INTERVAL_S = 0.005
SOCKET_TIMEOUT_S = 30.0
NEW_CONNECTIONS = False


def max_row(name: str) -> str:
    return f"{name}: max"


def p50_row(name: str) -> str:
    return f"{name}: p50"


@dataclass(frozen=True)
class Sample:
    max_ms: float
    p50_ms: float
    probes: int
    big_fetches: int


def _probe_once(conn: http.client.HTTPConnection) -> float:
    start = time.perf_counter()
    conn.request("GET", STATE_CASE.target)
    response = conn.getresponse()
    body = response.read()
    elapsed = time.perf_counter() - start
    if response.status != 200 or body != STATE_CASE.body:
        raise TransferError(f"probe answered {response.status}")
    return elapsed * 1e3


def measure(port: int, target: str, size: int, fetches_per_client: int = 1) -> Sample:
    """Probe while `BIG_CLIENTS` threads each fetch the big body `fetches_per_client` times."""
    errors: list[BaseException] = []
    fetched = [0]

    def big_client() -> None:
        try:
            for _ in range(fetches_per_client):
                if fetch_discard(port, target) < size:
                    raise TransferError("short body")
                fetched[0] += 1
        except BaseException as exc:  # reported by the probe thread
            errors.append(exc)

    conn = http.client.HTTPConnection(HOST, port, timeout=SOCKET_TIMEOUT_S)
    try:
        _probe_once(conn)  # connected and warm before the big fetches start
        clients = [threading.Thread(target=big_client, daemon=True) for _ in range(BIG_CLIENTS)]
        for client in clients:
            client.start()
        latencies: list[float] = []
        while any(c.is_alive() for c in clients):
            if NEW_CONNECTIONS:
                fresh = http.client.HTTPConnection(HOST, port, timeout=SOCKET_TIMEOUT_S)
                try:
                    latencies.append(_probe_once(fresh))
                finally:
                    fresh.close()
                continue
            latencies.append(_probe_once(conn))
            time.sleep(PROBE_INTERVAL_S)
        for client in clients:
            client.join(SOCKET_TIMEOUT_S)
    finally:
        conn.close()
    if errors:
        raise TransferError(f"big client: {errors[0]!r}")
    if not latencies:
        raise TransferError("no probe ran during the big fetches")
    return Sample(max(latencies), statistics.median(latencies), len(latencies), fetched[0])


def fairness_bench(reps: int = 5, target_mb: float = 20, log_dir: Path | None = None) -> Group:
    if log_dir is None:
        with tempfile.TemporaryDirectory(prefix="synwsgi-fairness-") as tmp:
            return fairness_bench(reps, target_mb, Path(tmp))
    reference, _count, cached_target = big_json_reference(target_mb)
    built_reference = encode_canonical_json(build_events(BUILT_ITEMS))
    bodies = {name: (cached_target, reference) for name in VARIANTS}
    bodies[BUILT] = bodies[BUILT_UNPACED] = (f"{LARGE_BUILT_PATH}?items={BUILT_ITEMS}", built_reference)
    limit = Target("<=", LIMIT_MS, f"<={LIMIT_MS:g} ms")
    group = Group(
        "fairness",
        f"gevent -w 1: small GET latency while {BIG_CLIENTS} clients fetch "
        f"{len(reference) / 2**20:.1f} MiB canonical JSON (cached), or "
        f"{len(built_reference) / 2**20:.1f} MiB built per request",
        "ms",
        baseline=max_row(DEFAULT),
        targets={max_row(DEFAULT): limit, max_row(BUILT): limit},
        note=f"state-route GET every {PROBE_INTERVAL_S * 1e3:g} ms on a keep-alive connection; "
        "round trip in wall time (the 2 cores are shared with the clients); the built body: "
        f"{BUILT_ITEMS} events built for each request, cooperating every 1 000 as `/_demo/large` does",
    )
    errors = (OSError, TransferError, ValueError, http.client.HTTPException)
    with contextlib.ExitStack() as stack:
        ports: dict[str, int] = {}
        notes: dict[str, str] = {}
        for name, spec in VARIANTS.items():
            try:
                server = stack.enter_context(running(name, spec, log_dir))
                target, body = bodies[name]
                notes[name] = check_variant("synwsgi incremental", server.port, target, body)
                ports[name] = server.port
            except (*errors, Exception) as exc:
                group.rows.append(Row(max_row(name), status="error", note=f"{type(exc).__name__}: {exc}"))
        runs = rotate_rounds(
            list(ports),
            lambda n: guarded(lambda: measure(ports[n], bodies[n][0], len(bodies[n][1])), errors),
            reps,
            120,
        )
    for name, samples in runs.items():
        ok = [s for s in samples if not isinstance(s, Failure)]
        probes = f"{sum(s.probes for s in ok)} probes; " if ok else ""
        group.rows.append(
            row_from_runs(max_row(name), samples, lambda s: s.max_ms, probes + notes.get(name, ""))
        )
        group.rows.append(row_from_runs(p50_row(name), samples, lambda s: s.p50_ms))
    group.order([f(n) for n in VARIANTS for f in (max_row, p50_row)])
    return group
