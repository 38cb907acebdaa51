"""Group d: req/s, p99 and worker CPU per request under wrk load, through real
gunicorn workers.

On a machine with two cores, a server with two workers and a two-thread wrk
fight over the same cores, and the result is mostly the scheduler's luck
(one server measured 965 and 3,124 req/s a minute apart). So the server is
one worker on one CPU and wrk one thread on another (see ``Placement``):
the single worker is saturated and its req/s is the inverse of its CPU per
request, the thing the candidates differ in. The worker's CPU time per
request is also read directly (``/proc/<pid>/task/*/schedstat``), which other
processes on the machine barely disturb.
"""

from __future__ import annotations

import importlib
import re
import statistics
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from bench.candidates import SYNWSGI, SYNWSGI_APP_SPEC, SYNWSGI_PRODUCTION
from bench.inproc import STATE_CASE
from bench.model import Failure, Group, Status, Target, Unavailable, guarded, row_from_runs
from bench.servers import HOST, Launch, Server, ServerPool, child_setup, usable_cpus
from bench.timing import rotate_rounds

BASELINE = "raw"
FALCON = "falcon"
#: synwsgi's app served from the mypyc-compiled tree of ``bench/compiled.py``
SYNWSGI_MYPYC = "synwsgi (mypyc)"
#: Falcon and Flask as deployed with observability (bench/peers/observed.py):
#: gunicorn's access log and a prometheus-client latency histogram per route
FALCON_OBSERVED = "falcon+observability"
FLASK_OBSERVED = "flask+observability"
OBSERVED_SPECS = {
    FALCON_OBSERVED: "bench.peers.observed:falcon",
    FLASK_OBSERVED: "bench.peers.observed:flask",
}
#: synwsgi+hooks' samples again, judged against Falcon with its own observability
HOOKS_VS_FALCON = "synwsgi+hooks (vs falcon+obs)"
PEERS = (
    BASELINE,
    FALCON,
    SYNWSGI,
    SYNWSGI_PRODUCTION,
    SYNWSGI_MYPYC,
    FALCON_OBSERVED,
    FLASK_OBSERVED,
)
HOOKS_MIN_RATIO = 0.9  # production hooks: at least this x the same app without (issue 19)
HOOKS_MAX_P99_RATIO = 1.3  # production hooks: p99 at most this x the same app's without (issue 19)
HOOKS_VS_FALCON_RATIO = 1.0  # synwsgi+hooks vs falcon+observability (issue 19)
SERVER_WORKERS = 1
WRK_THREADS = 1
WRK_TIMEOUT_S = 5
WARMUP_CONNECTIONS = 32
LATENCY_UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}
CONFIG_FILE = Path(__file__).resolve().with_name("load_gunicorn_conf.py")
COMPILED_ENV = "SYNWSGI_BENCH_COMPILED"  # read by load_gunicorn_conf.py


@dataclass(frozen=True)
class LoadConfig:
    worker_class: str
    connections: int
    min_rps_ratio: float  # synwsgi req/s vs Falcon's
    p99_vs_falcon: bool = False

    @property
    def short_class(self) -> str:
        """The worker class as rows name it (`pywsgi`: synwsgi's `PyWSGIWorker`)."""
        return "pywsgi" if self.worker_class == PYWSGI_WORKER else self.worker_class

    @property
    def label(self) -> str:
        return f"{self.short_class} c{self.connections}"


#: gunicorn's `gevent_pywsgi` worker with synwsgi's fixes: the default of both gunicorn.conf.py
PYWSGI_WORKER = "synwsgi.pywsgi_worker.PyWSGIWorker"

CONFIGS = (
    LoadConfig("gevent", 32, 1.0),
    LoadConfig("gevent", 256, 1.0, p99_vs_falcon=True),
    LoadConfig(PYWSGI_WORKER, 32, 1.0),
    LoadConfig(PYWSGI_WORKER, 256, 1.0, p99_vs_falcon=True),
    LoadConfig("sync", 32, 1.0),
)


@dataclass(frozen=True)
class Placement:
    """The CPUs of the server (all its processes) and of wrk; None: unpinned."""

    server_cpus: tuple[int, ...] | None
    wrk_cpus: tuple[int, ...] | None

    @property
    def label(self) -> str:
        if self.server_cpus is None or self.wrk_cpus is None:
            return "server and wrk unpinned (fewer than 2 CPUs)"
        return f"server on CPU {_cpus(self.server_cpus)}, wrk on CPU {_cpus(self.wrk_cpus)}"


def _cpus(cpus: tuple[int, ...]) -> str:
    return ",".join(map(str, cpus))


def placement() -> Placement:
    """One CPU for the server, another for wrk (the last and the first usable)."""
    cpus = usable_cpus()
    if len(cpus) < 2:
        return Placement(None, None)
    return Placement((cpus[-1],), (cpus[0],))


@dataclass(frozen=True)
class WrkResult:
    rps: float
    p99_ms: float
    requests: int
    problems: str  # socket errors / non-2xx counts, if any


@dataclass(frozen=True)
class Sample:
    """One wrk run and the CPU time the server's workers used meanwhile."""

    wrk: WrkResult
    cpu_s: float  # CPU time of the server's workers during the run


def parse_wrk(output: str) -> WrkResult:
    """Requests/sec, request count, the 99% latency line and error counters of ``wrk --latency``."""
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    p99 = re.search(r"^\s*99%\s+([\d.]+)(us|ms|s|m)\s*$", output, re.MULTILINE)
    count = re.search(r"^\s*(\d+) requests in ", output, re.MULTILINE)
    if rps is None or p99 is None or count is None:
        raise ValueError(f"unparsable wrk output: {output[-300:]!r}")
    problems = [line.strip() for line in output.splitlines() if "Socket errors" in line or "Non-2xx" in line]
    p99_ms = float(p99.group(1)) * LATENCY_UNITS_MS[p99.group(2)]
    return WrkResult(float(rps.group(1)), p99_ms, int(count.group(1)), "; ".join(problems))


def run_wrk(
    port: int, target: str, connections: int, seconds: int, cpus: tuple[int, ...] | None = None
) -> WrkResult:
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
        preexec_fn=child_setup(cpus),
    )
    return parse_wrk(done.stdout)


def wrk_state_route(
    port: int, connections: int, seconds: int, cpus: tuple[int, ...] | None = None
) -> WrkResult | Failure:
    """One wrk run against the state route; failures are returned, not raised."""
    run = partial(run_wrk, port, STATE_CASE.target, connections, seconds, cpus)
    return guarded(run, (OSError, subprocess.SubprocessError, ValueError))


def cpu_ns(pids: Sequence[int]) -> int:
    """CPU time (user + system, ns) used so far by every thread of ``pids``."""
    total = 0
    for pid in pids:
        for task in Path(f"/proc/{pid}/task").iterdir():
            total += int((task / "schedstat").read_text().split()[0])
    return total


def measured_run(
    server: Server, pids: Sequence[int], connections: int, seconds: int, where: Placement
) -> Sample | Failure:
    """One wrk run, with the CPU its workers used per answered request."""
    try:
        before = cpu_ns(pids)
        result = wrk_state_route(server.port, connections, seconds, where.wrk_cpus)
        used = cpu_ns(pids) - before
    except (OSError, ValueError) as exc:  # a worker died: /proc entry gone
        return Failure(f"worker CPU time: {type(exc).__name__}: {exc}")
    if isinstance(result, Failure):
        return result
    if result.requests == 0 or used <= 0:
        return Failure("wrk: no request answered")
    return Sample(result, used / 1e9)


# -- groups ------------------------------------------------------------------


def _targets(config: LoadConfig) -> dict[str, Target]:
    vs_falcon = Target(">=", config.min_rps_ratio, f">={config.min_rps_ratio:g}x falcon", FALCON)
    return {
        SYNWSGI: vs_falcon,
        SYNWSGI_MYPYC: vs_falcon,
        SYNWSGI_PRODUCTION: Target(
            ">=", HOOKS_MIN_RATIO, f">={HOOKS_MIN_RATIO:g}x synwsgi (no hooks)", SYNWSGI
        ),
        HOOKS_VS_FALCON: Target(
            ">=", HOOKS_VS_FALCON_RATIO, f">={HOOKS_VS_FALCON_RATIO:g}x {FALCON_OBSERVED}", FALCON_OBSERVED
        ),
    }


def _groups(config: LoadConfig, where: Placement) -> tuple[Group, Group, Group]:
    """Throughput per CPU-second (the targets), wall-clock req/s, p99."""
    server = f"gunicorn -k {config.short_class} -w {SERVER_WORKERS}"
    setup = f"{server}, wrk -t{WRK_THREADS} -c{config.connections}; {where.label}"
    key = f"load-{config.short_class}-c{config.connections}"
    per_cpu = Group(
        f"{key}-rps",
        f"Load {config.label}: req/s per CPU-second of the worker",
        "req/CPU-s",
        baseline=BASELINE,
        higher_is_better=True,
        targets=_targets(config),
        note=f"{setup}; requests answered / worker CPU time (user+system) in the run",
    )
    wall = Group(
        f"{key}-wall",
        f"Load {config.label}: req/s, wall clock",
        "req/s",
        baseline=BASELINE,
        higher_is_better=True,
        note="moves with what else runs on the server's CPU; 'per round': ratio within each rotated round",
    )
    p99 = Group(
        f"{key}-p99",
        f"Load {config.label}: p99 latency",
        "ms",
        baseline=BASELINE,
        targets={
            **({SYNWSGI: Target("<=", 1.0, "<=falcon p99", FALCON)} if config.p99_vs_falcon else {}),
            SYNWSGI_PRODUCTION: Target(
                "<=", HOOKS_MAX_P99_RATIO, f"<={HOOKS_MAX_P99_RATIO:g}x synwsgi p99 (no hooks)", SYNWSGI
            ),
        },
    )
    return per_cpu, wall, p99


#: row -> the row its per-round ratio is taken against (both from the same round)
PAIRS = {
    SYNWSGI: FALCON,
    SYNWSGI_MYPYC: FALCON,
    SYNWSGI_PRODUCTION: SYNWSGI,
    HOOKS_VS_FALCON: FALCON_OBSERVED,
}


def per_round_ratio(
    runs: dict[str, list[Sample | Failure]], name: str, metric: Callable[[Sample], float]
) -> str:
    """``vs <other> per round <median>x (<min>-<max>)``: the ratio of ``name`` to
    its pair within each round, so that a slow spell of the machine cancels out."""
    other = PAIRS.get(name)
    if other is None or other not in runs:
        return ""
    ratios = [
        metric(mine) / metric(theirs)
        for mine, theirs in zip(runs[name], runs[other], strict=False)
        if isinstance(mine, Sample) and isinstance(theirs, Sample) and metric(theirs)
    ]
    if not ratios:
        return ""
    median = statistics.median(ratios)
    return f"vs {other} per round {median:.2f}x ({min(ratios):.2f}-{max(ratios):.2f})"


def _problems(runs: Sequence[Sample | Failure]) -> str:
    return "; ".join(sorted({r.wrk.problems for r in runs if isinstance(r, Sample) and r.wrk.problems}))


def _note(*parts: str) -> str:
    return "; ".join(p for p in parts if p)


def _req_per_cpu_s(sample: Sample) -> float:
    return sample.wrk.requests / sample.cpu_s


def _req_per_s(sample: Sample) -> float:
    return sample.wrk.rps


def _p99_ms(sample: Sample) -> float:
    return sample.wrk.p99_ms


def _measure(
    pool: ServerPool, config: LoadConfig, seconds: int, reps: int, where: Placement
) -> tuple[Group, Group, Group]:
    servers = pool.servers
    pids = {name: server.worker_pids() for name, server in servers.items()}

    def one(name: str) -> Sample | Failure:
        return measured_run(servers[name], pids[name], config.connections, seconds, where)

    budget = reps * len(servers) * (seconds + 5)
    runs = rotate_rounds(list(servers), one, reps, budget)
    if SYNWSGI_PRODUCTION in runs and FALCON_OBSERVED in runs:
        runs[HOOKS_VS_FALCON] = runs[SYNWSGI_PRODUCTION]
    groups = _groups(config, where)
    for name, mine in runs.items():
        problems = _problems(mine)
        for group, metric in zip(groups, (_req_per_cpu_s, _req_per_s, _p99_ms), strict=True):
            if name == HOOKS_VS_FALCON and metric is not _req_per_cpu_s:
                continue  # the repeated row is for the throughput target only
            paired = per_round_ratio(runs, name, metric) if metric is not _p99_ms else ""
            group.rows.append(row_from_runs(name, mine, metric, _note(paired, problems)))
    return groups


def _warm_up(servers: dict[str, Server], seconds: int, where: Placement) -> None:
    for server in servers.values():
        wrk_state_route(server.port, WARMUP_CONNECTIONS, seconds, where.wrk_cpus)


# -- the compiled candidate ------------------------------------------------------


def compiled_tree() -> Path:
    """The directory of the mypyc-compiled synwsgi (built by ``bench/compiled.py``
    on first use, reused after), or :class:`Unavailable`."""
    try:
        compiled = importlib.import_module("bench.compiled")  # optional, written separately
    except ImportError as exc:
        raise Unavailable(f"bench/compiled.py: {exc}") from exc
    builder = getattr(compiled, "compiled_tree", None)
    if builder is None:
        raise Unavailable("bench/compiled.py has no compiled_tree()")
    try:
        return Path(builder())
    except Unavailable:  # no toolchain
        raise
    except Exception as exc:  # a failed build is the row's error, not the suite's
        raise RuntimeError(f"mypyc build: {type(exc).__name__}: {exc}") from exc


def compiled_or_problem() -> Path | tuple[Status, str]:
    """The compiled tree, or the status and reason of the mypyc row without one;
    resolved once per section, so that both worker classes serve the same build."""
    try:
        return compiled_tree()
    except Unavailable as exc:
        return ("unavailable", str(exc))
    except RuntimeError as exc:
        return ("error", str(exc))


def launch_for(where: Placement, pool: ServerPool, compiled: Path | tuple[Status, str]) -> Launch:
    """The pool's servers: one worker on the server CPU, the bench gunicorn
    config; the compiled candidate with its tree (or a problem row)."""
    env: dict[str, dict[str, str]] = {
        name: {"GUNICORN_CMD_ARGS": f"--access-logfile {pool.log_dir / f'gunicorn-access-{name}.log'}"}
        for name in OBSERVED_SPECS
    }
    if isinstance(compiled, Path):
        env[SYNWSGI_MYPYC] = {COMPILED_ENV: str(compiled)}
    else:
        pool.problems[SYNWSGI_MYPYC] = compiled
    return Launch(
        workers=SERVER_WORKERS,
        config=CONFIG_FILE,
        cpus=where.server_cpus,
        specs={SYNWSGI_MYPYC: SYNWSGI_APP_SPEC, **OBSERVED_SPECS},
        env=env,
    )


def run_load(seconds: int, reps: int, warmup_s: int, log_dir: Path) -> list[Group]:
    where = placement()
    compiled = compiled_or_problem()  # may build it first (a minute or two)
    groups: list[Group] = []
    for worker_class in dict.fromkeys(c.worker_class for c in CONFIGS):
        with ServerPool(worker_class, log_dir) as pool:
            pool.launch = launch_for(where, pool, compiled)
            for name in PEERS:
                if name not in pool.problems:
                    pool.start(name, STATE_CASE.target, STATE_CASE.body)
            _warm_up(pool.servers, warmup_s, where)
            for config in (c for c in CONFIGS if c.worker_class == worker_class):
                for group in _measure(pool, config, seconds, reps, where):
                    group.rows += pool.problem_rows()
                    group.order((*PEERS, HOOKS_VS_FALCON))
                    groups.append(group)
    return groups
