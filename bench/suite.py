"""Orchestration: settings, sections, metadata, command line."""

from __future__ import annotations

import argparse
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from types import FrameType
from typing import Any

from bench.fairness import fairness_bench
from bench.hooks import run_hooks_inproc
from bench.hubstall import hub_stall_bench
from bench.inproc import run_inproc
from bench.jsonbench import run_json
from bench.load import run_load
from bench.model import Group, Row
from bench.report import render_table, summary, write_chart, write_json
from bench.routing import run_routing
from bench.servers import ROOT
from bench.streaming import run_streaming

BENCH_DIR = Path(__file__).resolve().parent
PACKAGES = (
    "werkzeug", "falcon", "bottle", "flask", "gunicorn", "gevent",
    "orjson", "canonicaljson",
)  # fmt: skip


@dataclass(frozen=True)
class Settings:
    """Sizes and repetitions; every section is bounded by these."""

    inproc_rounds: int
    inproc_round_s: float
    inproc_budget_s: float
    routing_rounds: int
    routing_round_s: float
    routing_budget_s: float
    json_mb: float
    json_rounds: int
    json_budget_s: float
    load_seconds: int
    load_reps: int
    load_warmup_s: int
    stream_bytes: int
    stream_reps: int
    fairness_reps: int
    section_limit_s: int  # hard cap per section (watchdog against hangs)


FULL = Settings(
    inproc_rounds=15, inproc_round_s=0.05, inproc_budget_s=90,
    routing_rounds=15, routing_round_s=0.05, routing_budget_s=30,
    json_mb=20, json_rounds=7, json_budget_s=60,
    load_seconds=4, load_reps=5, load_warmup_s=2,
    stream_bytes=200 * 2**20, stream_reps=5, fairness_reps=7,
    section_limit_s=1200,  # the load section: 3 worker classes x its candidates, ~11 min
)  # fmt: skip
QUICK = Settings(
    inproc_rounds=5, inproc_round_s=0.02, inproc_budget_s=20,
    routing_rounds=5, routing_round_s=0.02, routing_budget_s=10,
    json_mb=20, json_rounds=3, json_budget_s=20,
    load_seconds=2, load_reps=3, load_warmup_s=1,
    stream_bytes=64 * 2**20, stream_reps=3, fairness_reps=3,
    section_limit_s=240,
)  # fmt: skip

Section = Callable[[Settings, Path], list[Group]]


def _hubstall(settings: Settings, log_dir: Path) -> list[Group]:
    group = hub_stall_bench()
    return [group] if group is not None else []


SECTIONS: dict[str, Section] = {
    "inproc": lambda s, _: run_inproc(s.inproc_rounds, s.inproc_round_s, s.inproc_budget_s),
    "routing": lambda s, _: [run_routing(s.routing_rounds, s.routing_round_s, s.routing_budget_s)],
    "json": lambda s, _: [run_json(s.json_mb, s.json_rounds, s.json_budget_s)],
    "load": lambda s, logs: run_load(s.load_seconds, s.load_reps, s.load_warmup_s, logs),
    "stream": lambda s, logs: run_streaming(s.stream_bytes, s.stream_reps, logs),
    "hubstall": _hubstall,
    "hooks": lambda s, _: run_hooks_inproc(s.inproc_rounds, 4 * s.inproc_round_s, s.inproc_budget_s),
    "fairness": lambda s, logs: [fairness_bench(s.fairness_reps, s.json_mb, logs)],
}


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class SectionTimeout(Exception):
    """A section overran ``Settings.section_limit_s``."""


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    raise SectionTimeout("section exceeded its time limit")


def run_section(key: str, settings: Settings, log_dir: Path) -> list[Group]:
    """Run one section under a watchdog alarm; a crash or a hang becomes an
    error row instead of aborting the suite (servers are stopped on the way
    out by their context managers)."""
    started = time.monotonic()
    log(f"{key}: running")
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    signal.alarm(settings.section_limit_s)
    try:
        groups = SECTIONS[key](settings, log_dir)
    except Exception as exc:  # report it and go on with the suite
        note = f"{type(exc).__name__}: {exc}"
        groups = [
            Group(key, f"{key} (section failed)", "-", baseline=key,
                  rows=[Row(key, status="error", note=note)])
        ]  # fmt: skip
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    log(f"{key}: done in {time.monotonic() - started:.0f}s")
    return groups


def _git_commit() -> str | None:
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT, capture_output=True, text=True, timeout=10, check=True,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def collect_meta(quick: bool, settings: Settings, elapsed_s: float) -> dict[str, Any]:
    return {
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "quick": quick,
        "elapsed_s": round(elapsed_s, 1),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "git_commit": _git_commit(),
        "packages": {p: _version(p) for p in PACKAGES},
        "settings": asdict(settings),
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run", description="Run the synwsgi benchmark suite."
    )
    parser.add_argument("--quick", action="store_true", help="smaller, faster run (~2 minutes)")
    parser.add_argument(
        "--only",
        default=",".join(SECTIONS),
        help=f"comma-separated sections to run (default: all of {','.join(SECTIONS)})",
    )
    parser.add_argument(
        "--out-dir", type=Path, default=BENCH_DIR,
        help="where results.json and results.png go (default: bench/)",
    )  # fmt: skip
    parser.add_argument("--no-chart", action="store_true", help="skip results.png")
    args = parser.parse_args(argv)
    unknown = set(args.only.split(",")) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s): {', '.join(sorted(unknown))}")
    return args


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # so that `finally` blocks stop the servers


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    settings = QUICK if args.quick else FULL
    started = time.monotonic()
    groups: list[Group] = []
    with tempfile.TemporaryDirectory(prefix="synwsgi-bench-") as logs:
        for key in (k for k in SECTIONS if k in args.only.split(",")):
            groups += run_section(key, settings, Path(logs))
    elapsed = time.monotonic() - started
    print(render_table(groups))
    print(f"\n{summary(groups)}; total {elapsed:.0f}s")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    write_json(
        args.out_dir / "results.json",
        groups,
        collect_meta(args.quick, settings, elapsed),
    )
    print(f"results written to {args.out_dir / 'results.json'}")
    if not args.no_chart:
        print(write_chart(args.out_dir / "results.png", groups))
    return 0
