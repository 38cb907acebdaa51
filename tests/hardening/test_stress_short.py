"""CI runs the short mode of every stress script (stress/README.md has the full runs).

Each script runs in a subprocess from the project root, bounded in time; it
starts and stops its own gunicorn servers on 127.0.0.1 (by PID) and prints
its figures, ending with a `RESULT <name> {json}` line. A script passes when
it exits 0; its output is shown when it does not.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]

SCRIPTS = {
    "soak": 240,
    "disconnects": 180,
    "slow_clients": 120,
    "raising_handler": 120,
    "fuzz_campaign": 180,
}


@pytest.mark.integration
@pytest.mark.parametrize("script", list(SCRIPTS))
def test_stress_script_short_mode(script: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", f"stress.{script}", "--short"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=SCRIPTS[script],
    )
    output = result.stdout + ("\n[stderr]\n" + result.stderr[-4000:] if result.stderr.strip() else "")
    print(output)
    lines = [line for line in result.stdout.splitlines() if line.startswith(f"RESULT {script} ")]
    assert lines, f"no RESULT line from stress.{script}:\n{output[-6000:]}"
    figures = json.loads(lines[-1].split(" ", 2)[2])
    assert result.returncode == 0 and figures["ok"], f"stress.{script} --short failed:\n{output[-6000:]}"
