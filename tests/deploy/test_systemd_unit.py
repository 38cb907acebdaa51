"""deploy/synwsgi.service starts: its ExecStart, with its Environment, serves.

systemd is not run here (no root, no systemd in CI containers); what the unit
relies on is reproduced instead: the working directory (the repository stands
for /srv/synwsgi), the environment, and a file-system tree in which exactly
the directories its ``RuntimeDirectory=``/``StateDirectory=`` lines create
exist, so a path the unit names but systemd would not create fails here as it
would on a server (gunicorn.conf.py stops when PROMETHEUS_MULTIPROC_DIR is
missing).
"""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

from tests.deploy.conftest import UNIT, unit_directories, unit_tree
from tests.integration.servers import HOST, PROJECT_ROOT, _launch, http_get

_VENV = "/srv/synwsgi/.venv/bin/"


def _unit_value(key: str) -> str:
    match = re.search(rf"^{key}=(.*)$", UNIT.read_text(), re.MULTILINE)
    assert match, f"{UNIT.name} has no {key}="
    return match[1].strip()


def test_unit_directories_hold_every_path_its_environment_names() -> None:
    created = unit_directories()
    assert "/run/synwsgi/prometheus" in created
    for name, value in unit_tree(Path("/nonexistent")).items():
        if value.startswith("/nonexistent/"):
            original = "/" + value.removeprefix("/nonexistent/")
            assert original in created, f"{name}={original} is not created by the unit"


def test_exec_start_with_the_unit_environment_serves(tmp_path: Path) -> None:
    exec_start = shlex.split(_unit_value("ExecStart"))
    assert exec_start[0] == _VENV + "gunicorn", exec_start
    assert _unit_value("WorkingDirectory") == "/srv/synwsgi"
    env = unit_tree(tmp_path)
    # Exactly the unit's directories exist in the tree, nothing else under run/ or var/.
    made = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_dir())
    expected = {d.lstrip("/") for d in unit_directories()}
    assert set(made) - expected <= {"run", "var", "var/lib", "var/cache", "var/log"}, made

    def argv(port: int) -> list[str]:
        env["SYNWSGI_BIND"] = f"{HOST}:{port}"
        # The venv's gunicorn script is `python -m gunicorn` of that venv; the
        # arguments are the unit's, unchanged.
        return [sys.executable, "-m", "gunicorn", *exec_start[1:]]

    bind = env["SYNWSGI_BIND"]
    assert bind.startswith("127.0.0.1:"), bind
    with _launch(
        "gunicorn",
        argv,
        host=HOST,
        cwd=PROJECT_ROOT,
        env=env,
        timeout=30,
        ready_path="/_matrix/client/versions",
        min_workers=1,
        stop_grace=10,
        workdir=tmp_path,
    ) as server:
        status, _, body = http_get(server, "/_matrix/client/versions")
        assert status == 200 and b"versions" in body
    metrics_dir = Path(env["PROMETHEUS_MULTIPROC_DIR"])
    assert metrics_dir.is_relative_to(tmp_path) and metrics_dir.is_dir()
