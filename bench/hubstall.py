"""Group f: how long the gevent hub stalls while a ~20 MB JSON response is sent.

One ``gunicorn -k gevent -w 1`` per variant of ``bench/peers/synwsgi_app.py``:
``app`` (synwsgi as configured by default: a big JSON body is encoded
incrementally, yielding to the hub every 2 ms) and ``app_oneshot`` (the same
app encoding in one go). In each worker a ticker greenlet sleeps 1 ms in a
loop and records its worst lateness (``/_bench/stall``); the bench fetches
``/_bench/large-cached?items=N`` (the event list is built once per worker, so
only the toolkit's encode and send are measured) with a raw socket reader that
discards the body, then reads the ticker. An "idle" run reads the ticker of an
idle worker over about as long, as the floor of what the machine allows.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from canonicaljson import encode_canonical_json

from bench.jsonbench import events_of_size
from bench.model import Failure, Group, Row, Target, guarded, row_from_runs
from bench.servers import HOST, ROOT, Server, ServerError, die_with_parent, free_port, gunicorn_command
from bench.streaming import TransferError, fetch_discard
from bench.timing import rotate_rounds

APP_MODULE = "bench.peers.synwsgi_app"
LARGE_CACHED_PATH = "/_bench/large-cached"  # as in bench/peers/synwsgi_app.py
STALL_PATH = "/_bench/stall"

INCREMENTAL = "synwsgi incremental"
ONESHOT = "one-shot"
IDLE = "idle worker"
VARIANTS = {INCREMENTAL: f"{APP_MODULE}:app", ONESHOT: f"{APP_MODULE}:app_oneshot"}
RUNS = (INCREMENTAL, ONESHOT, IDLE)

STALL_LIMIT_MS = 5.0
TOTAL_LIMIT_RATIO = 2.0
BUDGET_S = 90.0  # no new round after this (a round takes about a second)
SETTLE_S = 0.02  # let the ticker get going before the fetch
SOCKET_TIMEOUT_S = 30.0


def stall_row(run: str) -> str:
    return f"{run}: max hub stall (ms)"


def cpu_row(run: str) -> str:
    return f"{run}: max hub stall, CPU time (ms)"


def total_row(run: str) -> str:
    return f"{run}: total fetch (ms)"


BASELINE = total_row(ONESHOT)
ROW_ORDER = (
    stall_row(INCREMENTAL), stall_row(ONESHOT), stall_row(IDLE),
    cpu_row(INCREMENTAL), cpu_row(ONESHOT), cpu_row(IDLE),
    total_row(INCREMENTAL), total_row(ONESHOT),
)  # fmt: skip


@dataclass(frozen=True)
class Sample:
    """One measured run: wall time of the fetch and the ticker's report."""

    total_ms: float
    stall_ms: float
    cpu_stall_ms: float


# -- servers ---------------------------------------------------------------


def start_one_worker(name: str, spec: str, log_dir: Path) -> Server:
    """``gunicorn -k gevent -w 1`` for ``spec`` (one worker, so the ticker and
    the big response share a hub); the caller must stop it."""
    port = free_port()
    command = gunicorn_command(spec, "gevent", port)
    command[command.index("--workers") + 1] = "1"
    log_path = log_dir / f"gunicorn-hubstall-{name.replace(' ', '-')}-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env={**os.environ, "SYNWSGI_METRICS_BIND": ""},  # no listener on the repo config's fixed port
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
    return Server(name, "gevent", port, process, log_path)


@contextlib.contextmanager
def running(name: str, spec: str, log_dir: Path) -> Iterator[Server]:
    server = start_one_worker(name, spec, log_dir)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


# -- client ----------------------------------------------------------------


def read_stall(port: int, stop: bool = False) -> dict[str, float]:
    """The ticker's report since the last call (starting it, or stopping it)."""
    conn = http.client.HTTPConnection(HOST, port, timeout=SOCKET_TIMEOUT_S)
    try:
        conn.request("GET", f"{STALL_PATH}?stop=1" if stop else STALL_PATH)
        response = conn.getresponse()
        body = response.read()
    finally:
        conn.close()
    if response.status != 200:
        raise TransferError(f"{STALL_PATH} answered {response.status}")
    report = json.loads(body)
    if report.get("max_gap_ms") is None:
        raise TransferError(f"{STALL_PATH}: no ticker (not a gevent worker?)")
    return {k: float(v) for k, v in report.items()}


def fetch_checked(port: int, target: str) -> tuple[http.client.HTTPResponse, bytes]:
    """(response, decoded body) of one GET, for the correctness check."""
    conn = http.client.HTTPConnection(HOST, port, timeout=SOCKET_TIMEOUT_S)
    try:
        conn.request("GET", target)
        response = conn.getresponse()
        return response, response.read()
    finally:
        conn.close()


def check_variant(name: str, port: int, target: str, reference: bytes) -> str:
    """Fetch ``target`` once (which also builds the worker's cached event list),
    check the body and the framing, start the ticker; return the row note."""
    response, body = fetch_checked(port, target)
    if response.status != 200:
        raise TransferError(f"GET {target} answered {response.status}")
    if body != reference:
        raise TransferError(f"body differs from canonicaljson ({len(body)} vs {len(reference)} bytes)")
    chunked = response.getheader("Transfer-Encoding", "").lower() == "chunked"
    if chunked != (name == INCREMENTAL):  # incremental bodies have no Content-Length
        framing = "chunked" if chunked else "Content-Length"
        raise TransferError(f"{framing} body: not the expected encoding path")
    read_stall(port)  # start the ticker
    return f"body == canonicaljson ({'chunked' if chunked else 'Content-Length'})"


def measure_fetch(port: int, target: str, min_bytes: int) -> Sample:
    read_stall(port)  # (re)start the ticker, reset its maximum
    time.sleep(SETTLE_S)
    start = time.perf_counter_ns()
    received = fetch_discard(port, target)
    total_ms = (time.perf_counter_ns() - start) / 1e6
    report = read_stall(port, stop=True)
    if received < min_bytes:
        raise TransferError(f"short body: {received} < {min_bytes} bytes")
    if report["ticks"] < 1:
        raise TransferError("the ticker never woke up")
    return Sample(total_ms, report["max_gap_ms"], report["max_cpu_gap_ms"])


def measure_idle(port: int, seconds: float) -> Sample:
    read_stall(port)
    time.sleep(SETTLE_S + seconds)
    report = read_stall(port, stop=True)
    return Sample(seconds * 1e3, report["max_gap_ms"], report["max_cpu_gap_ms"])


def big_json_reference(target_mb: float) -> tuple[bytes, int, str]:
    """canonicaljson's bytes for about `target_mb` MB of events, their count, and the path serving them."""
    obj = events_of_size(int(target_mb * 2**20))
    reference = encode_canonical_json(obj)
    count = len(obj["items"])
    return reference, count, f"{LARGE_CACHED_PATH}?items={count}"


def hub_stall_bench(reps: int = 11, target_mb: float = 20, log_dir: Path | None = None) -> Group | None:
    """The hub stall group: ``reps`` rotated rounds of every run (medians)."""
    if log_dir is None:
        with tempfile.TemporaryDirectory(prefix="synwsgi-hubstall-") as tmp:
            return hub_stall_bench(reps, target_mb, Path(tmp))
    reference, count, target = big_json_reference(target_mb)
    group = Group(
        "hubstall",
        f"gevent hub while sending {count} events ({len(reference) / 2**20:.1f} MiB) of "
        "canonical JSON, gunicorn gevent -w 1",
        "ms",
        baseline=BASELINE,
        targets={
            stall_row(INCREMENTAL): Target("<=", STALL_LIMIT_MS, f"<={STALL_LIMIT_MS:g} ms"),
            total_row(INCREMENTAL): Target(
                "<=", TOTAL_LIMIT_RATIO, f"<={TOTAL_LIMIT_RATIO:g}x one-shot", BASELINE
            ),
        },
        note="stall = worst lateness of a 1 ms ticker greenlet in the worker (wall time; "
        "CPU time = the worker's own share); ratio column vs the one-shot total fetch",
    )
    with contextlib.ExitStack() as stack:
        ports: dict[str, int] = {}
        notes: dict[str, str] = {}
        for name, spec in VARIANTS.items():
            try:
                server = stack.enter_context(running(name, spec, log_dir))
                notes[name] = check_variant(name, server.port, target, reference)
                ports[name] = server.port
            except (ServerError, OSError, TransferError, ValueError, http.client.HTTPException) as exc:
                why = f"{type(exc).__name__}: {str(exc)[:200]}"
                group.rows += [Row(r(name), status="error", note=why) for r in (stall_row, cpu_row)]
                group.rows.append(Row(total_row(name), status="error", note=why))
        runs_of = _measure(ports, target, len(reference), reps)
    for name, runs in runs_of.items():
        note = notes.get(name, "")
        group.rows.append(row_from_runs(stall_row(name), runs, lambda s: s.stall_ms, note))
        group.rows.append(row_from_runs(cpu_row(name), runs, lambda s: s.cpu_stall_ms))
        if name != IDLE:
            group.rows.append(row_from_runs(total_row(name), runs, lambda s: s.total_ms))
    group.order(ROW_ORDER)
    return group


def _measure(ports: dict[str, int], target: str, size: int, reps: int) -> dict[str, list[Sample | Failure]]:
    """Rotated rounds of the fetches and of the idle run (on the incremental
    worker, for as long as the fetches took so far)."""
    names = [n for n in RUNS if n in ports or (n == IDLE and INCREMENTAL in ports)]
    durations: list[float] = []
    errors = (OSError, TransferError, ValueError, http.client.HTTPException)

    def one(name: str) -> Sample | Failure:
        if name == IDLE:
            seconds = statistics.median(durations) / 1e3 if durations else 0.2
            return guarded(lambda: measure_idle(ports[INCREMENTAL], seconds), errors)
        result = guarded(lambda: measure_fetch(ports[name], target, size), errors)
        if isinstance(result, Sample):
            durations.append(result.total_ms)
        return result

    return rotate_rounds(names, one, reps, budget_s=BUDGET_S)
