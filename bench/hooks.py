"""Group g: what the production hooks (access log + metrics) cost per request.

The showcase's production configuration is measured against the same app
without hooks, in-process (this module) and under gunicorn (`bench/load.py`).
Production means what `gunicorn.conf.py` sets up: Prometheus in multiprocess
mode (`PROMETHEUS_MULTIPROC_DIR` set before prometheus_client is imported, so
every value write goes to an mmap'ed file) and the `Processed request` line
really written, here to a file through a `logging.FileHandler`.

Multiprocess mode is chosen once per process at import time, so the
measurement runs in child processes started with `PROMETHEUS_MULTIPROC_DIR`
set: one on pure Python, one on the opt-in mypyc build (`bench/compiled.py`,
whose `ChildSamplers` runs one round per request of the parent). The parent
rotates the rounds of all four rows, so drift hits both builds alike.
"""

from __future__ import annotations

import os
import tempfile
from functools import partial
from pathlib import Path

from bench.compiled import ChildSamplers, Prepared
from bench.model import Group, Row, Status, Target, Unavailable
from bench.timing import rotate_rounds

PLAIN = "synwsgi (no hooks)"
PRODUCTION = "synwsgi + access log + metrics (multiprocess)"
PLAIN_MYPYC = "synwsgi (mypyc, no hooks)"
PRODUCTION_MYPYC = "synwsgi (mypyc) + access log + metrics (multiprocess)"
NAMES = (PLAIN, PRODUCTION, PLAIN_MYPYC, PRODUCTION_MYPYC)
LIMIT = 2.0  # issue 19: production hooks at most 2x the request without them
CASE_TITLES = {"inproc-route": "state route", "inproc-404": "404"}  # bench.inproc's case keys


def hook_samplers(round_seconds: float, log_path: str, mypyc: bool) -> dict[str, Prepared]:
    """In a child process: samplers for both apps on both cases, named
    ``<case key>:<row name>``; the access lines go to ``log_path``."""
    from bench.inproc import NOT_FOUND_CASE, STATE_CASE, check_response
    from bench.peers import synwsgi_app
    from bench.timing import NS_PER_US, calibrate, loop_sampler
    from bench.wsgi_call import call_once, capture, make_environ

    synwsgi_app.configure_access_log(log_path)
    names = (PLAIN_MYPYC, PRODUCTION_MYPYC) if mypyc else (PLAIN, PRODUCTION)
    apps = dict(zip(names, (synwsgi_app.app, synwsgi_app.app_production), strict=True))
    out: dict[str, Prepared] = {}
    for case in (STATE_CASE, NOT_FOUND_CASE):
        environ = make_environ(case.target)
        for name, app in apps.items():
            note = check_response(capture(app, environ), case)
            work = partial(call_once, app, environ)
            out[f"{case.key}:{name}"] = loop_sampler(work, calibrate(work, round_seconds), 1, NS_PER_US), note
    return out


def _start(tmp: str, mypyc: bool, round_seconds: float) -> tuple[ChildSamplers, Path, Path]:
    """A child with its own multiprocess-metrics directory and access log."""
    base = Path(tmp, "mypyc" if mypyc else "pure")
    metrics_dir = base / "prometheus"
    metrics_dir.mkdir(parents=True)
    log_path = base / "access.log"
    env = {"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    args = [round_seconds, str(log_path), mypyc]
    return ChildSamplers("bench.hooks:hook_samplers", args, env, compiled=mypyc), metrics_dir, log_path


def _note(metrics_dir: Path, log_path: Path) -> str:
    with open(log_path, "rb") as log:
        lines = sum(1 for line in log if b"Processed request" in line)
    kinds = sorted({f.split("_")[0] for f in os.listdir(metrics_dir)})
    return f"{lines} access lines written to a file; metric files: {', '.join(kinds)}"


def run_hooks_inproc(rounds: int, round_seconds: float, budget_s: float) -> list[Group]:
    """Both builds run in children started with ``PROMETHEUS_MULTIPROC_DIR``
    set (multiprocess mode is chosen at import); the parent drives their
    rounds, rotated and interleaved, so drift hits every row alike."""
    builds = {False: (PLAIN, PRODUCTION), True: (PLAIN_MYPYC, PRODUCTION_MYPYC)}
    failed: dict[str, Row] = {}
    children: dict[bool, tuple[ChildSamplers, Path, Path]] = {}
    results: dict[str, dict[str, list[float]]] = {}
    build_notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="synwsgi-bench-hooks-") as tmp:
        try:
            for mypyc, names in builds.items():
                try:
                    children[mypyc] = _start(tmp, mypyc, round_seconds)
                except Exception as exc:  # the compiled build may be unavailable here
                    status: Status = "unavailable" if isinstance(exc, Unavailable) else "error"
                    for name in names:
                        failed[name] = Row(name, status=status, note=f"{type(exc).__name__}: {exc}"[:300])
            owner = {
                name: children[mypyc][0]
                for mypyc, names in builds.items()
                if mypyc in children
                for name in names
            }
            for key in CASE_TITLES:

                def one_round(name: str, key: str = key) -> float:
                    return owner[name].sample(f"{key}:{name}")

                results[key] = rotate_rounds(list(owner), one_round, rounds, budget_s / len(CASE_TITLES))
        finally:
            for child, _, _ in children.values():
                child.close()  # also flushes the batched metrics (atexit) before they are listed
        for mypyc, (_, metrics_dir, log_path) in children.items():
            build_notes.append(f"{'mypyc' if mypyc else 'pure'}: {_note(metrics_dir, log_path)}")
    notes = {key: note for child, _, _ in children.values() for key, note in child.notes.items()}
    groups = []
    for key, what in CASE_TITLES.items():
        group = Group(
            f"hooks-{key}",
            f"In-process {what}: production hooks vs none",
            "us/req",
            baseline=PLAIN,
            targets={
                PRODUCTION: Target("<=", LIMIT, f"<={LIMIT:g}x no hooks", PLAIN),
                PRODUCTION_MYPYC: Target("<=", LIMIT, f"<={LIMIT:g}x no hooks (mypyc)", PLAIN_MYPYC),
            },
            note="; ".join(build_notes),
        )
        for name in NAMES:
            row = failed.get(name) or Row(name, results[key][name], note=notes[f"{key}:{name}"])
            group.rows.append(row)
        groups.append(group)
    return groups
