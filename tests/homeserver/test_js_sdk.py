"""matrix-js-sdk (JavaScript, Node) drives the example homeserver over a real gunicorn,
beside matrix-nio and mautrix (Python): register, login, createRoom, a second user
joins, send, both clients' `/sync` loops see the message, logout.

The SDK is pinned in `tests/homeserver/js/package-lock.json` (36.x: 37 and later
need Node 22) and installed by `npm ci` into a cache directory keyed by the lock
file's hash (`$SYNWSGI_NPM_CACHE`, default `~/.cache/synwsgi-tests`), once per
lock file. Needs Node 20+ and npm: missing under CI is a failure, elsewhere a skip.
Runs on SQLite and on PostgreSQL (the `homeserver` fixture).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.timeout(300)

JS_DIR = Path(__file__).with_name("js")
FILES = ("package.json", "package-lock.json", "flow.mjs")
MIN_NODE = 20


def _missing(message: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def js_client_dir() -> Path:
    """A directory with the pinned matrix-js-sdk installed (`npm ci`) and the flow script."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        _missing("node and npm are needed for the matrix-js-sdk test")
    assert node is not None and npm is not None
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=True).stdout
    if int(version.strip().lstrip("v").split(".")[0]) < MIN_NODE:
        _missing(f"matrix-js-sdk 36 needs Node {MIN_NODE}+, found {version.strip()}")
    lock = (JS_DIR / "package-lock.json").read_bytes()
    cache = Path(os.environ.get("SYNWSGI_NPM_CACHE", Path.home() / ".cache" / "synwsgi-tests"))
    target = cache / f"js-sdk-{hashlib.sha256(lock).hexdigest()[:16]}"
    if not (target / "node_modules" / "matrix-js-sdk" / "package.json").is_file():
        target.mkdir(parents=True, exist_ok=True)
        for name in ("package.json", "package-lock.json"):
            shutil.copyfile(JS_DIR / name, target / name)
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=target,
            check=True,
            timeout=600,
        )
    shutil.copyfile(JS_DIR / "flow.mjs", target / "flow.mjs")
    return target


def test_matrix_js_sdk_flow(homeserver: Any, js_client_dir: Path) -> None:
    node = shutil.which("node")
    assert node is not None
    done = subprocess.run(
        [node, "flow.mjs", homeserver.url],
        cwd=js_client_dir,
        capture_output=True,
        text=True,
        timeout=120,
    )
    # The SDK's own chatter (its unstable push rule names, group-call state) is not the error.
    noise = ("Adding default global", "MatrixRTCSessionManager")
    errors = "\n".join(line for line in done.stderr.splitlines() if not line.startswith(noise))
    assert done.returncode == 0, done.stdout[-2000:] + errors[-4000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    assert results["registered_user_id"] == results["login_user_id"]
    assert results["registered_user_id"].endswith(":localhost")
    assert results["bob_saw"] == results["sent_event_id"] == results["alice_saw"]
    assert results["bob_room_name"] == "js room" and results["bob_sees_alice_as"] == "join"
    assert results["token_after_logout"] == "M_UNKNOWN_TOKEN"
    assert "v1.11" in results["versions"]
