"""Where a request's CPU goes inside a gunicorn worker, per candidate of the load group.

``python -m bench.loadprofile [gevent|sync] [connections] [seconds] [names]``
starts the load group's servers (one worker pinned to one CPU, wrk on
another, as ``bench/load.py``) with ``SYNWSGI_BENCH_PROFILE`` set, so each
worker samples its own Python stack on CPU time (``CpuSampler`` in
``bench/load_gunicorn_conf.py``: one sample per scheduler tick of CPU the
worker used, so waiting for a CPU that others hold is never sampled). Each
sample is put in one bucket (gunicorn's request parsing, environ, response
writing, its worker loop, the app, the hooks' parts) and the table gives
microseconds of worker CPU per request: samples x tick / requests answered.

It is a diagnostic, not a suite section: it takes a minute or two, and a
bucket's figure is good to a few percent only with a thousand samples or
more (``seconds`` >= 15 on a busy machine). C code is credited to the Python
frame that called it, so a compiled framework's time shows as the line of
gunicorn that calls the app ("app: compiled code called by gunicorn").
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from bench.inproc import STATE_CASE
from bench.load import (
    PEERS,
    SYNWSGI_MYPYC,
    WrkResult,
    compiled_or_problem,
    launch_for,
    placement,
    wrk_state_route,
)
from bench.load_gunicorn_conf import PROFILE_ENV
from bench.servers import ServerPool

#: a frame from one of these files is the app (its framework, handler or hooks)
APP_FILES = ("/synwsgi/", "/bench/peers/", "/falcon/")
#: gunicorn's request reading and parsing
PARSE_FILES = (
    "gunicorn/http/parser.py",
    "gunicorn/http/message.py",
    "gunicorn/http/unreader.py",
    "gunicorn/http/body.py",
)
WRITE_FUNCTIONS = (
    "Response.write",
    "send_headers",
    "default_headers",
    "Response.close",
    "http_date",
    "write_chunk",
)
HOOK_BUCKETS = (
    ("prometheus_client", "hooks: prometheus_client"),
    ("synwsgi/metrics", "hooks: synwsgi metrics"),
    ("/logging/", "hooks: logging (format, file write)"),
    ("synwsgi/accesslog", "hooks: synwsgi accesslog"),
)
APP_CALL = "app: compiled code called by gunicorn"
FRAME = re.compile(r"^(?P<fn>.*?) \((?P<file>.*?)(?::(?P<line>\d+))?\)$")

Frame = tuple[str, str, str | None]  # function, file, line (leaf only)


def parse_frame(text: str) -> Frame:
    match = FRAME.match(text)
    if match is None:
        return text, "", None
    return match["fn"], match["file"], match["line"]


def _calls_app(frame: Frame) -> bool:
    """Whether the leaf is gunicorn's ``respiter = self.wsgi(environ, ...)`` line."""
    fn, file, line = frame
    if not (fn.endswith("handle_request") and "gunicorn/workers/" in file and line):
        return False
    try:
        source = Path(file).read_text().splitlines()[int(line) - 1]
    except (OSError, IndexError):
        return False
    return "self.wsgi(" in source


def bucket(stack: Sequence[Frame], app_call: bool) -> str:
    """The bucket of one sample (``stack``: root first)."""
    first_app = next((i for i, (_, file, _) in enumerate(stack) if any(a in file for a in APP_FILES)), None)
    if first_app is not None:
        files = " ".join(file for _, file, _ in stack[first_app:])
        for marker, name in HOOK_BUCKETS:
            if marker in files:
                return name
        if "gunicorn/" in files:
            return "gunicorn called by the app (start_response)"
        return "app (framework + handler)"
    if app_call:
        return APP_CALL
    files = " ".join(file for _, file, _ in stack)
    if any(p in files for p in PARSE_FILES):
        return "gunicorn: read + parse the request"
    if "gunicorn/http/wsgi.py" in files:
        functions = " ".join(fn for fn, _, _ in stack)
        if any(w in functions for w in WRITE_FUNCTIONS):
            return "gunicorn: write the response"
        return "gunicorn: build environ + Response"
    if "gunicorn/" in files:
        return "gunicorn: worker loop (accept, keep-alive, timeouts)"
    return "gevent hub / other" if "gevent" in files else "other"


def buckets(profile: Path) -> Counter[str]:
    counts: Counter[str] = Counter()
    for line in profile.read_text().splitlines():
        stack_text, _, count = line.rpartition(" ")
        stack = [parse_frame(f) for f in stack_text.split(";")]
        counts[bucket(stack, _calls_app(stack[-1]))] += int(count)
    return counts


def tick_us() -> float:
    """CPU time per ``ITIMER_PROF`` sample: the kernel delivers at most one per
    scheduler tick (``CONFIG_HZ``; 250 Hz assumed when it cannot be read)."""
    try:
        config = Path(f"/boot/config-{os.uname().release}").read_text()
        hz = int(re.search(r"^CONFIG_HZ=(\d+)$", config, re.MULTILINE)[1])  # type: ignore[index]
    except (OSError, TypeError):
        hz = 250
    return 1e6 / hz


def profile(worker_class: str, connections: int, seconds: int, names: Sequence[str]) -> str:
    where = placement()
    results: dict[str, tuple[Counter[str], WrkResult]] = {}
    gc_us: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="loadprofile-") as tmp:
        log_dir = Path(tmp)
        pool = ServerPool(worker_class, log_dir)
        compiled = compiled_or_problem() if SYNWSGI_MYPYC in names else ("unavailable", "not asked for")
        base = launch_for(where, pool, compiled)  # a missing tree goes to pool.problems
        if SYNWSGI_MYPYC not in names:
            pool.problems.pop(SYNWSGI_MYPYC)
        env = {
            n: {**base.env.get(n, {}), PROFILE_ENV: str(log_dir / f"profile-{i}")}
            for i, n in enumerate(names)
        }
        pool.launch = dataclasses.replace(base, env=env)
        with pool:
            for name in names:
                if name not in pool.problems:
                    pool.start(name, STATE_CASE.target, STATE_CASE.body)
            runs = {
                n: wrk_state_route(s.port, connections, seconds, where.wrk_cpus)
                for n, s in pool.servers.items()
            }
        for i, name in enumerate(names):  # the workers wrote their profiles on exit
            run = runs.get(name)
            files = list(log_dir.glob(f"profile-{i}.*"))
            if isinstance(run, WrkResult) and files:
                results[name] = (sum((buckets(f) for f in files), Counter()), run)
                gc_us[name] = sum(gc_cpu_s(f) for f in log_dir.glob(f"profile-{i}-gc.*")) * 1e6 / run.requests
    problems = "".join(f"{n}: {why}\n" for n, (_, why) in pool.problems.items())
    title = f"{worker_class} c{connections}, {where.label}"
    extra = {"of which garbage collection (measured)": gc_us}
    return render(results, tick_us(), title, extra) + problems


def gc_cpu_s(path: Path) -> float:
    """The worker's CPU seconds in garbage collection (``CpuSampler.dump``)."""
    return float(path.read_text().split()[0])


def render(
    results: dict[str, tuple[Counter[str], WrkResult]],
    tick: float,
    title: str,
    extra: dict[str, dict[str, float]],
) -> str:
    """The table: a row per bucket, then total, samples and the ``extra`` rows (us/request)."""
    names = list(results)
    rows = sorted({b for counts, _ in results.values() for b in counts})
    width = max([len(r) for r in [*rows, *extra]] + [10])
    per_request = {
        n: {b: c * tick / run.requests for b, c in counts.items()} for n, (counts, run) in results.items()
    }

    def line(label: str, cells: list[str]) -> str:
        return f"{label:{width}}" + "".join(f"{c:>16}" for c in cells)

    out = [f"worker CPU per request (us), {title}", line("", names)]
    out += [line(row, [f"{per_request[n].get(row, 0.0):.1f}" for n in names]) for row in rows]
    out.append(line("total", [f"{sum(per_request[n].values()):.1f}" for n in names]))
    out.append(line("samples", [str(sum(results[n][0].values())) for n in names]))
    out += [line(label, [f"{values.get(n, 0.0):.1f}" for n in names]) for label, values in extra.items()]
    return "\n".join(out) + "\n"


def main(argv: Sequence[str]) -> None:
    worker_class = argv[0] if argv else "gevent"
    connections = int(argv[1]) if len(argv) > 1 else 32
    seconds = int(argv[2]) if len(argv) > 2 else 15
    names = argv[3].split(",") if len(argv) > 3 else [n for n in PEERS if n != SYNWSGI_MYPYC]
    sys.stdout.write(profile(worker_class, connections, seconds, names))


if __name__ == "__main__":
    main(sys.argv[1:])
