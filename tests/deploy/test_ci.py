"""What a newcomer copies: the README's commands, .ci/run, the systemd unit."""

from __future__ import annotations

import re
import subprocess

from tests.deploy.conftest import UNIT, unit_environment
from tests.integration.servers import PROJECT_ROOT

README = PROJECT_ROOT / "README.rst"
CI_RUN = PROJECT_ROOT / ".ci" / "run"


def readme_commands() -> list[str]:
    """The one-line shell commands in README.rst's literal blocks."""
    text = README.read_text()
    return [m[1] for m in re.finditer(r"::\n\n    (python3 -m venv .+)\n", text)]


def readme_test_command() -> str:
    commands = [c for c in readme_commands() if "pytest" in c]
    assert len(commands) == 1, commands
    return commands[0]


def test_ci_runs_exactly_the_readme_test_command() -> None:
    lines = [line for line in CI_RUN.read_text().splitlines() if line and not line.startswith("#")]
    assert readme_test_command() in lines


def test_readme_test_command_makes_its_own_venv() -> None:
    """From a fresh shell nothing may land in the system Python: every python is the venv's."""
    command = readme_test_command()
    assert command.startswith("python3 -m venv .venv && ")
    pythons = re.findall(r"(\S*python3?)\s+-m\s+(\w+)", command)
    assert [p for p, module in pythons if module != "venv"], command
    assert all(p == ".venv/bin/python" for p, module in pythons if module != "venv"), pythons


def test_ci_fails_when_pytest_collects_nothing() -> None:
    text = CI_RUN.read_text()
    assert re.search(r'if \[ "\$rc" -eq 5 \]; then.*?exit 1', text, re.DOTALL)


def test_ci_scripts_are_valid_bash() -> None:
    for script in (CI_RUN, *sorted((PROJECT_ROOT / ".ci").glob("*.sh"))):
        result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, (script, result.stderr)


def test_install_system_is_idempotent_and_bounded() -> None:
    text = (PROJECT_ROOT / ".ci" / "install-system.sh").read_text()
    for package in ("chromium", "chromium-driver", "nginx", "postgresql"):
        assert re.search(rf"\b{re.escape(package)}\b", text), package
    runs = [
        line.strip()
        for line in text.splitlines()
        if re.search(r"apt-get (update|install)", line)
        and not line.strip().startswith(("#", "log ", "echo "))
    ]
    assert len(runs) == 2 and all(line.startswith("timeout ") for line in runs), runs
    assert "policy-rc.d" in text


def test_unit_settings_are_ones_the_app_reads() -> None:
    """Every SYNWSGI_* the unit sets is read by gunicorn.conf.py or wsgi.py (no silent typo)."""
    env = unit_environment()
    assert env["SYNWSGI_BEHIND_PROXY"] == "1"
    assert env["SYNWSGI_BIND"].startswith("127.0.0.1:")
    read = (PROJECT_ROOT / "gunicorn.conf.py").read_text() + (PROJECT_ROOT / "wsgi.py").read_text()
    for name in env:
        if name.startswith("SYNWSGI_"):
            assert f'"{name}"' in read, f"{name} is set by {UNIT.name} but read nowhere"
    unit = UNIT.read_text()
    assert re.search(r"^ExecStart=\S+/gunicorn wsgi:app$", unit, re.MULTILINE)
    assert "WorkingDirectory=" in unit
