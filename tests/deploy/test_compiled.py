"""The opt-in compiled build (README "Optional compiled build") passes the unit tests.

Pure Python is the reference; this test makes CI test the mypyc build too. The
wheel is built as the README's opt-in install builds it (``SYNWSGI_MYPYC=1 pip
wheel --no-build-isolation``, from a copy of the sources: `bench/compiled.py`,
which the benchmark shares, reusing a tree already built from identical
sources), unpacked, and the unit tests run in a subprocess whose working
directory and first ``sys.path`` entry is that tree, so its compiled
``synwsgi`` shadows the repository's pure one. The subprocess then reports the
file of every synwsgi module it imported, proving the tests ran compiled code.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from bench.compiled import ROOT, compiled_env, compiled_tree

#: Unit tests not run against the compiled build, each with the reason.
NOT_COMPILED = {
    # They read the source files and run ruff/mypy on them: nothing of the
    # running code is under test, and the pure run covers them.
    "test_architecture.py": "checks the import graph of the source files",
    "test_static_analysis.py": "runs ruff and mypy on the source tree",
}

# Runs pytest in-process, then prints where every synwsgi module came from
# (`-c`: the working directory, the compiled tree, is first on sys.path).
RUNNER = """\
import json, sys
import pytest
code = pytest.main(sys.argv[2:])
files = {n: str(getattr(m, "__file__", "")) for n, m in sys.modules.items() if n.split(".")[0] == "synwsgi"}
with open(sys.argv[1], "w") as out:
    json.dump(files, out)
sys.exit(int(code))
"""


def _mypyc_modules() -> set[str]:
    """``MYPYC_MODULES`` as setup.py lists them (setup.py cannot be imported)."""
    tree = ast.parse((ROOT / "setup.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "MYPYC_MODULES" for t in node.targets
        ):
            return set(ast.literal_eval(node.value))
    raise AssertionError("setup.py defines no MYPYC_MODULES")


@pytest.mark.timeout(900)
def test_unit_tests_pass_on_the_compiled_build() -> None:
    tree = compiled_tree()  # fails, never skips, without a compiler: CI must test both builds
    compiled = {
        ".".join((*path.relative_to(tree / "synwsgi").parent.parts, path.name.split(".")[0]))
        for path in (tree / "synwsgi").rglob("*.so")
    }
    assert compiled == _mypyc_modules(), "the wheel's extension modules differ from setup.py's list"

    tests = sorted(p for p in (ROOT / "tests").glob("test_*.py") if p.name not in NOT_COMPILED)
    assert len(tests) > 20 and all((ROOT / "tests" / name).exists() for name in NOT_COMPILED)
    with tempfile.TemporaryDirectory(prefix="synwsgi-compiled-tests-") as tmp:
        report = Path(tmp, "modules.json")
        env = compiled_env(tree, {"HYPOTHESIS_STORAGE_DIRECTORY": str(Path(tmp, "hypothesis"))})
        done = subprocess.run(
            [sys.executable, "-c", RUNNER, str(report), "-q", "-p", "no:cacheprovider", *map(str, tests)],
            cwd=tree, env=env, capture_output=True, text=True, timeout=840,
        )  # fmt: skip
        summary = done.stdout[-4000:] + done.stderr[-2000:]
        assert done.returncode == 0, summary
        files = json.loads(report.read_text(encoding="utf-8"))

    last_line = done.stdout.strip().splitlines()[-1]
    assert " passed" in last_line and "failed" not in last_line and "error" not in last_line, last_line
    for name in sorted(compiled):
        assert files.get(f"synwsgi.{name}", "").endswith(".so"), (name, files.get(f"synwsgi.{name}"))
    home = tree.resolve()
    outside = {name: path for name, path in files.items() if not Path(path).resolve().is_relative_to(home)}
    assert not outside, f"synwsgi modules imported from outside the compiled tree: {outside}"
