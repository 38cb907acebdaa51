"""`python -m build` makes an sdist and a wheel that work on their own.

The sdist is built from the work tree and the wheel from the sdist (what
`python -m build` does by default), without build isolation so that no
network is needed. The wheel is installed with pip into a fresh virtualenv
whose only other contents are the running venv's site-packages (for
Werkzeug, gunicorn & co.; a .pth line, so the editable synwsgi there is not
picked up), and gunicorn from that venv serves a JSON servlet and a webroot
file out of the installed package.
"""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.servers import HOST, PROJECT_ROOT, Server, _launch, http_get

WEBROOT = PROJECT_ROOT / "synwsgi" / "webroot"

APP = """\
from pathlib import Path

import synwsgi
from synwsgi import JsonResource, RestServlet, Site, StaticResource


class WhereServlet(RestServlet):
    PATTERNS = ["/_matrix/client/where"]

    def on_GET(self, request):
        return 200, {"synwsgi": synwsgi.__file__, "version": synwsgi.__version__}


client = JsonResource()
WhereServlet().register(client)
app = Site(
    {
        "/_matrix/client": client,
        "/_matrix/static": StaticResource(Path(synwsgi.__file__).parent / "webroot"),
    }
)
"""


def _run(*argv: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{argv}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="synwsgi-wheel-") as tmp:
        yield Path(tmp)


@pytest.fixture(scope="module")
def dist(workdir: Path) -> dict[str, Path]:
    out = workdir / "dist"
    _run(sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(PROJECT_ROOT))
    wheels, sdists = sorted(out.glob("*.whl")), sorted(out.glob("*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, list(out.iterdir())
    return {"wheel": wheels[0], "sdist": sdists[0]}


def test_twine_check_passes(dist: dict[str, Path]) -> None:
    result = _run(sys.executable, "-m", "twine", "check", "--strict", str(dist["wheel"]), str(dist["sdist"]))
    assert result.stdout.count("PASSED") == 2, result.stdout


def test_wheel_carries_webroot_types_and_license(dist: dict[str, Path]) -> None:
    names = set(zipfile.ZipFile(dist["wheel"]).namelist())
    assert "synwsgi/py.typed" in names
    for path in WEBROOT.rglob("*"):
        if path.is_file():
            assert f"synwsgi/{path.relative_to(WEBROOT.parent).as_posix()}" in names
    assert any(name.endswith("LICENSE") and ".dist-info/" in name for name in names), sorted(names)
    assert not any(name.startswith(("tests/", "bench/", "stress/", "deploy/")) for name in names)
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    text = zipfile.ZipFile(dist["wheel"]).read(metadata).decode()
    assert "Apache-2.0" in text


def test_sdist_carries_license_and_changelog(dist: dict[str, Path]) -> None:
    with tarfile.open(dist["sdist"]) as tar:
        names = {name.partition("/")[2] for name in tar.getnames()}
    for needed in (
        "LICENSE",
        "README.rst",
        "setup.py",
        "pyproject.toml",
        "synwsgi/py.typed",
        "synwsgi/webroot/index.html",
    ):
        assert needed in names, sorted(names)


@pytest.fixture(scope="module")
def venv(workdir: Path, dist: dict[str, Path]) -> Path:
    """A fresh venv with the wheel installed by pip, dependencies borrowed from ours."""
    root = workdir / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", str(root))
    python = root / "bin" / "python"
    purelib = Path(
        _run(str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip()
    )
    _run(
        sys.executable,
        "-m",
        "pip",
        "--python",
        str(python),
        "install",
        "--no-deps",
        "--no-index",
        str(dist["wheel"]),
    )
    # Only now borrow the dependencies: with our site-packages visible, pip could
    # take a synwsgi installed there for this one and skip the wheel.
    (purelib / "_synwsgi_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return root


def test_installed_wheel_serves_a_request(venv: Path, workdir: Path) -> None:
    app_dir = workdir / "app"
    app_dir.mkdir()
    (app_dir / "wheel_app.py").write_text(APP)
    python = venv / "bin" / "python"

    def argv(port: int) -> list[str]:
        return [
            str(python), "-m", "gunicorn", "--worker-class", "sync", "--workers", "1",
            "--bind", f"{HOST}:{port}", "--no-control-socket", "--graceful-timeout", "2", "wheel_app:app",
        ]  # fmt: skip

    env = {"PYTHONPATH": "", "PYTHONNOUSERSITE": "1"}
    with _launch(
        "sync",
        argv,
        host=HOST,
        cwd=app_dir,
        env=env,
        timeout=30,
        ready_path="/_matrix/client/where",
        min_workers=1,
        stop_grace=7,
        workdir=workdir,
    ) as server:
        _check(server, venv)


def _check(server: Server, venv: Path) -> None:
    status, headers, body = http_get(server, "/_matrix/client/where")
    assert status == 200, body
    where = json.loads(body)
    # Served by the installed wheel, not by the work tree.
    assert Path(where["synwsgi"]).resolve().is_relative_to(venv.resolve()), where
    assert not Path(where["synwsgi"]).resolve().is_relative_to(PROJECT_ROOT.resolve())
    assert headers.get("Access-Control-Allow-Origin") == "*"
    status, _, page = http_get(server, "/_matrix/static/index.html")
    assert status == 200
    assert page == (WEBROOT / "index.html").read_bytes()
    status, _, body = http_get(server, "/_matrix/client/nowhere")
    assert status == 404 and json.loads(body)["errcode"] == "M_UNRECOGNIZED"
