"""The example is held to the toolkit's standard: mypy strict and ruff format.

(`tests/test_static_analysis.py` type-checks `synwsgi/` and lints the whole
tree; the example's own modules and its gunicorn config are checked here.)
"""

from __future__ import annotations

import subprocess
import sys

from .conftest import PROJECT_ROOT

EXAMPLE = ["examples/homeserver", "stress/sync_scale.py"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)


def test_example_is_mypy_strict_clean() -> None:
    result = run(sys.executable, "-m", "mypy", "--strict", "examples/homeserver")
    assert result.returncode == 0, result.stdout + result.stderr


def test_example_is_ruff_formatted() -> None:
    result = run(sys.executable, "-m", "ruff", "format", "--check", *EXAMPLE, "tests/homeserver")
    assert result.returncode == 0, result.stdout + result.stderr
