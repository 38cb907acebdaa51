"""Fixtures of the hardening tests.

* `showcase_client`: Werkzeug's test `Client` for the showcase app (`wsgi.app`);
* `hostile_server`: the showcase under a real gunicorn gevent worker (`HARDENING_WORKER`), configured
  by the repository's `gunicorn.conf.py` (its request-line and header limits
  included), one worker, Prometheus' multiprocess directory in a temp dir;
* `apps_server`: `tests.hardening._apps:app` (redirect/header/static test app)
  under a gunicorn gevent worker, serving `static_tree`'s static directory;
* `apps_dev_server`: the same app under Werkzeug's dev server (no header validation);
* `static_tree`: a temp dir with `static/` (served) and a secret beside it.

Fuzzing: 300 Hypothesis examples per property by default; `--fuzz-examples N`
or `SYNWSGI_FUZZ_EXAMPLES=N` changes the count (`python -m stress.fuzz_campaign`
runs the long campaign). Only the fuzz module's own tests get these settings.

Servers are started on 127.0.0.1 and stopped by PID by the harness
(`tests/integration/servers.py`), whatever happens to the tests.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from werkzeug.test import Client

PROJECT_ROOT = Path(__file__).resolve().parents[2]
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

from tests.integration.servers import Server, dev_server, gunicorn_server  # noqa: E402 - needs the path above

from . import _fuzzconf  # noqa: E402
from ._apps import STATIC_ENV  # noqa: E402
from ._util import StaticTree, make_static_tree  # noqa: E402

GUNICORN_CONF = PROJECT_ROOT / "gunicorn.conf.py"
#: The worker class the hardening servers run: the default of gunicorn.conf.py (synwsgi's
#: PyWSGIWorker); SYNWSGI_HARDENING_WORKER=gevent runs them on gunicorn's gevent worker.
HARDENING_WORKER = os.environ.get("SYNWSGI_HARDENING_WORKER", "pywsgi")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--fuzz-examples",
        type=int,
        default=None,
        help=f"Hypothesis examples per fuzz property (default {_fuzzconf.DEFAULT_EXAMPLES}, "
        f"env {_fuzzconf.ENV})",
    )


def pytest_configure(config: pytest.Config) -> None:
    examples = config.getoption("--fuzz-examples", default=None)
    if examples:
        _fuzzconf.EXAMPLES = examples
    config.addinivalue_line("markers", "integration: runs the app under real HTTP servers in subprocesses")


@pytest.fixture
def showcase_client() -> Client:
    import wsgi

    return Client(wsgi.app)


@pytest.fixture(scope="session")
def static_tree() -> Iterator[StaticTree]:
    with tempfile.TemporaryDirectory(prefix="synwsgi-static-") as base:
        yield make_static_tree(Path(base))


@pytest.fixture(scope="session")
def prometheus_dir() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="synwsgi-prom-") as path:
        yield path


@pytest.fixture(scope="session")
def hostile_server(prometheus_dir: str) -> Iterator[Server]:
    """The showcase under gunicorn gevent with the repository's gunicorn.conf.py."""
    env = {"SYNWSGI_WORKERS": "1", "PROMETHEUS_MULTIPROC_DIR": prometheus_dir, "SYNWSGI_LOG_LEVEL": "info"}
    with gunicorn_server(
        "wsgi:app",
        HARDENING_WORKER,
        config=GUNICORN_CONF,
        env=env,
        ready_path="/_matrix/client/versions",
        log_level="info",
    ) as server:
        yield server


@pytest.fixture(scope="session")
def apps_server(static_tree: StaticTree, prometheus_dir: str) -> Iterator[Server]:
    env = {
        "SYNWSGI_WORKERS": "1",
        "PROMETHEUS_MULTIPROC_DIR": prometheus_dir,
        STATIC_ENV: str(static_tree.static),
    }
    with gunicorn_server(
        "tests.hardening._apps:app",
        HARDENING_WORKER,
        config=GUNICORN_CONF,
        env=env,
        ready_path="/_t/ok",
        log_level="info",
    ) as server:
        yield server


@pytest.fixture(scope="session")
def apps_dev_server(static_tree: StaticTree) -> Iterator[Server]:
    """The same test app under Werkzeug's dev server (`python wsgi.py` serves the showcase so),
    which writes response headers as they are, without gunicorn's validation."""
    with dev_server(
        "tests.hardening._apps:app", env={STATIC_ENV: str(static_tree.static)}, ready_path="/_t/ok"
    ) as server:
        yield server


@pytest.fixture
def worker_survives(request: pytest.FixtureRequest) -> Iterator[None]:
    """Around a real-server test: the same worker process serves before and after it."""
    server: Server = request.getfixturevalue(
        "apps_server" if "apps_server" in request.fixturenames else "hostile_server"
    )
    before = server.worker_pids()
    assert len(before) == 1, before
    mark = server.log_mark()
    yield
    from ._util import assert_serves

    assert_serves(
        server, "/_t/ok" if server.argv[-1].startswith("tests.hardening") else "/_matrix/client/versions"
    )
    after = server.worker_pids()
    assert after == before, f"worker replaced: {before} -> {after}\n{server.log_tail(30)}"
    log = server.log(mark)
    for bad in ("Traceback", "WORKER TIMEOUT", "Worker exiting", "Booting worker"):
        assert bad not in log, f"{bad!r} in the server log:\n{log[-3000:]}"
