"""PEP 3333: the test suite passes with every test-`Client` app inside `wsgiref.validate.validator`.

Runs, in a subprocess from the project root::

    python -m pytest tests -p tests.wsgi_validate_plugin --ignore=tests/integration \
        --ignore=tests/hardening --ignore=tests/browser --ignore=tests/deploy \
        --ignore=tests/homeserver -q

(`tests/integration` and `tests/browser` drive real servers, never the test
`Client`; `tests/hardening` runs this very test.) When it fails, the same
suite runs once more without the plugin, so the message tells the failures
the validator caused from those the suite has anyway.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# Real servers, not the test Client: nothing for the validator to see, and slow.
IGNORED = ("tests/integration", "tests/hardening", "tests/browser", "tests/deploy", "tests/homeserver")
_FAILED = re.compile(r"^(?:FAILED|ERROR) (\S+)", re.MULTILINE)


def _run_suite(*extra: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "pytest", "tests", *extra, "-q", "-p", "no:cacheprovider", "-rfE"]
    argv += [f"--ignore={path}" for path in IGNORED]
    return subprocess.run(argv, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600)


def test_suite_passes_inside_wsgiref_validator() -> None:
    validated = _run_suite("-p", "tests.wsgi_validate_plugin")
    assert "went through wsgiref.validate" in validated.stdout, (
        validated.stdout[-3000:] + validated.stderr[-3000:]
    )
    if validated.returncode == 0:
        return
    plain = _run_suite()
    with_validator = set(_FAILED.findall(validated.stdout))
    without = set(_FAILED.findall(plain.stdout))
    only_validator = sorted(with_validator - without)
    # The validator's complaints, each once ("E   AssertionError: No Content-Type ...").
    complaints = sorted(
        {
            re.sub(r"\(\[.*", "(...)", line.strip())
            for line in validated.stdout.splitlines()
            if line.startswith("E ") and "AssertionError" in line and "validate" not in line
        }
    )
    raise AssertionError(
        f"{len(with_validator)} tests fail inside wsgiref.validate.validator, "
        f"{len(only_validator)} of them only there (PEP 3333 findings):\n  "
        + "\n  ".join(only_validator)
        + f"\nfailing without the validator too: {sorted(with_validator & without)}\n"
        + "distinct complaints:\n  "
        + "\n  ".join(complaints[:20])
    )
