"""Group g: what the production hooks (access log + metrics) cost per request.

The showcase's production configuration is measured against the same app
without hooks, in-process (this module) and under gunicorn (`bench/load.py`).
Production means what `gunicorn.conf.py` sets up: Prometheus in multiprocess
mode (`PROMETHEUS_MULTIPROC_DIR` set before prometheus_client is imported, so
every value write goes to an mmap'ed file) and the `Processed request` line
really written, here to a file through a `logging.FileHandler`.

Multiprocess mode is chosen once per process at import time, so the
measurement runs in a child process (`python -m bench.hooks --child`) that
prints its samples as JSON; the parent turns them into a group.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from functools import partial
from pathlib import Path
from typing import Any

from bench.model import Group, Row, Target
from bench.servers import ROOT

PLAIN = "synwsgi (no hooks)"
PRODUCTION = "synwsgi + access log + metrics (multiprocess)"
NAMES = (PLAIN, PRODUCTION)
LIMIT = 1.3


def _sample(samplers: dict[str, Any], name: str) -> float:
    return float(samplers[name]())


def _child(rounds: int, round_seconds: float, budget_s: float, log_path: str) -> dict[str, Any]:
    import logging

    from bench.inproc import NOT_FOUND_CASE, STATE_CASE, check_response
    from bench.peers import synwsgi_app
    from bench.timing import NS_PER_US, calibrate, loop_sampler, rotate_rounds
    from bench.wsgi_call import call_once, capture, make_environ

    handler = logging.FileHandler(log_path)
    handler.setFormatter(logging.Formatter("%(asctime)s - %(name)s - %(levelname)s - %(message)s"))
    access = logging.getLogger("synwsgi.access")
    access.addHandler(handler)
    access.setLevel(logging.INFO)
    access.propagate = False
    apps = {PLAIN: synwsgi_app.app, PRODUCTION: synwsgi_app.app_production}
    out: dict[str, Any] = {"groups": {}}
    for case in (STATE_CASE, NOT_FOUND_CASE):
        environ = make_environ(case.target)
        samplers = {}
        notes = {}
        for name, app in apps.items():
            notes[name] = check_response(capture(app, environ), case)
            work = partial(call_once, app, environ)
            samplers[name] = loop_sampler(work, calibrate(work, round_seconds), 1, NS_PER_US)
        results = rotate_rounds(list(samplers), partial(_sample, samplers), rounds, budget_s / 2)
        out["groups"][case.key] = {"samples": results, "notes": notes}
    handler.flush()
    with open(log_path, "rb") as log:
        out["access_lines"] = sum(1 for line in log if b"Processed request" in line)
    out["metric_files"] = sorted(os.listdir(os.environ["PROMETHEUS_MULTIPROC_DIR"]))
    return out


def run_hooks_inproc(rounds: int, round_seconds: float, budget_s: float) -> list[Group]:
    with tempfile.TemporaryDirectory(prefix="synwsgi-bench-hooks-") as tmp:
        metrics_dir = Path(tmp, "prometheus")
        metrics_dir.mkdir()
        log_path = Path(tmp, "access.log")
        env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
        done = subprocess.run(
            [sys.executable, "-m", "bench.hooks", "--child", str(rounds), str(round_seconds),
             str(budget_s), str(log_path)],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=budget_s + 120, check=True,
        )  # fmt: skip
        data = json.loads(done.stdout)
    groups = []
    note = (
        f"{data['access_lines']} access lines written to a file; metric files: "
        f"{', '.join(sorted({f.split('_')[0] for f in data['metric_files']}))}"
    )
    for key, result in data["groups"].items():
        what = "state route" if key == "inproc-route" else "404"
        group = Group(
            f"hooks-{key}",
            f"In-process {what}: production hooks vs none",
            "us/req",
            baseline=PLAIN,
            targets={PRODUCTION: Target("<=", LIMIT, f"<={LIMIT:g}x no hooks", PLAIN)},
            note=note,
        )
        for name in NAMES:
            group.rows.append(Row(name, result["samples"].get(name, []), note=result["notes"].get(name, "")))
        groups.append(group)
    return groups


if __name__ == "__main__" and sys.argv[1:2] == ["--child"]:
    rounds_arg, seconds_arg, budget_arg, log_arg = sys.argv[2:6]
    print(json.dumps(_child(int(rounds_arg), float(seconds_arg), float(budget_arg), log_arg)))
