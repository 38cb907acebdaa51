"""Group d: req/s and p99 under wrk load, through real gunicorn workers."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from bench.candidates import SYNWSGI, SYNWSGI_PRODUCTION
from bench.inproc import STATE_CASE
from bench.model import Failure, Group, Target, guarded, row_from_runs
from bench.servers import HOST, Server, ServerPool, die_with_parent
from bench.timing import rotate_rounds

BASELINE = "raw"
FALCON = "falcon"
PEERS = (BASELINE, FALCON, SYNWSGI, SYNWSGI_PRODUCTION)
HOOKS_MIN_RATIO = 0.9  # production hooks: at least this x the same app without
WRK_THREADS = 2
WRK_TIMEOUT_S = 5
LATENCY_UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


@dataclass(frozen=True)
class LoadConfig:
    worker_class: str
    connections: int
    min_rps_ratio: float  # synwsgi req/s vs Falcon's
    p99_vs_falcon: bool = False

    @property
    def label(self) -> str:
        return f"{self.worker_class} c{self.connections}"


CONFIGS = (
    LoadConfig("gevent", 32, 1.0),
    LoadConfig("gevent", 256, 1.0, p99_vs_falcon=True),
    LoadConfig("sync", 32, 1.0),
)


@dataclass(frozen=True)
class WrkResult:
    rps: float
    p99_ms: float
    problems: str  # socket errors / non-2xx counts, if any


def parse_wrk(output: str) -> WrkResult:
    """Requests/sec, the 99% latency line and error counters of ``wrk --latency``."""
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    p99 = re.search(r"^\s*99%\s+([\d.]+)(us|ms|s|m)\s*$", output, re.MULTILINE)
    if rps is None or p99 is None:
        raise ValueError(f"unparsable wrk output: {output[-300:]!r}")
    problems = [line.strip() for line in output.splitlines() if "Socket errors" in line or "Non-2xx" in line]
    p99_ms = float(p99.group(1)) * LATENCY_UNITS_MS[p99.group(2)]
    return WrkResult(float(rps.group(1)), p99_ms, "; ".join(problems))


def run_wrk(port: int, target: str, connections: int, seconds: int) -> WrkResult:
    command = [
        "wrk",
        f"-t{WRK_THREADS}",
        f"-c{connections}",
        f"-d{seconds}s",
        f"--timeout={WRK_TIMEOUT_S}s",
        "--latency",
        f"http://{HOST}:{port}{target}",
    ]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=seconds + 30,
        check=True,
        preexec_fn=die_with_parent,
    )
    return parse_wrk(done.stdout)


def wrk_state_route(port: int, connections: int, seconds: int) -> WrkResult | Failure:
    """One wrk run against the state route; failures are returned, not raised."""
    run = partial(run_wrk, port, STATE_CASE.target, connections, seconds)
    return guarded(run, (OSError, subprocess.SubprocessError, ValueError))


def _groups(config: LoadConfig) -> tuple[Group, Group]:
    rps = Group(
        f"load-{config.worker_class}-c{config.connections}-rps",
        f"Load {config.label}: throughput (gunicorn -w2, wrk -t2)",
        "req/s",
        baseline=BASELINE,
        higher_is_better=True,
        targets={
            SYNWSGI: Target(">=", config.min_rps_ratio, f">={config.min_rps_ratio:g}x falcon", FALCON),
            SYNWSGI_PRODUCTION: Target(
                ">=", HOOKS_MIN_RATIO, f">={HOOKS_MIN_RATIO:g}x synwsgi (no hooks)", SYNWSGI
            ),
        },
    )
    p99 = Group(
        f"load-{config.worker_class}-c{config.connections}-p99",
        f"Load {config.label}: p99 latency",
        "ms",
        baseline=BASELINE,
        targets=({SYNWSGI: Target("<=", 1.0, "<=falcon p99", FALCON)} if config.p99_vs_falcon else {}),
    )
    return rps, p99


def _problems(runs: Sequence[WrkResult | Failure]) -> str:
    return "; ".join(sorted({r.problems for r in runs if isinstance(r, WrkResult) and r.problems}))


def _measure(servers: dict[str, Server], config: LoadConfig, seconds: int, reps: int) -> tuple[Group, Group]:
    def one(name: str) -> WrkResult | Failure:
        return wrk_state_route(servers[name].port, config.connections, seconds)

    budget = reps * len(servers) * (seconds + 5)
    rps, p99 = _groups(config)
    for name, runs in rotate_rounds(list(servers), one, reps, budget).items():
        note = _problems(runs)
        rps.rows.append(row_from_runs(name, runs, lambda r: r.rps, note))
        p99.rows.append(row_from_runs(name, runs, lambda r: r.p99_ms, note))
    return rps, p99


def _warm_up(servers: dict[str, Server], seconds: int) -> None:
    for server in servers.values():
        wrk_state_route(server.port, 32, seconds)


def run_load(seconds: int, reps: int, warmup_s: int, log_dir: Path) -> list[Group]:
    groups: list[Group] = []
    for worker_class in dict.fromkeys(c.worker_class for c in CONFIGS):
        with ServerPool(worker_class, log_dir) as pool:
            for name in PEERS:
                pool.start(name, STATE_CASE.target, STATE_CASE.body)
            _warm_up(pool.servers, warmup_s)
            for config in (c for c in CONFIGS if c.worker_class == worker_class):
                for group in _measure(pool.servers, config, seconds, reps):
                    group.rows += pool.problem_rows()
                    group.order(PEERS)
                    groups.append(group)
    return groups
