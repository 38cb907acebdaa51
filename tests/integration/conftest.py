"""Fixtures that run the app under real servers.

Server fixtures are module-scoped (one server per kind per test module, only
started when a test asks for it) and parametrized by ``any_server``:

* ``gunicorn_sync``, ``gunicorn_gthread``, ``gunicorn_gevent``: one worker
  each (``gthread`` with 4 threads), log level ``debug``;
* ``werkzeug_dev``: ``werkzeug.serving.run_simple(threaded=True)``;
* ``any_server``: each of the four in turn.

The app defaults to ``wsgi:app`` (``/work/main/wsgi.py``). A test module can
override the module-scoped ``server_app``, ``server_env`` or
``server_log_level`` fixtures to change what the servers run. Tests whose app
module does not exist are skipped, not failed.

Every test under this directory gets the ``integration`` marker, so
``pytest -m "not integration"`` leaves them out.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from .servers import DEFAULT_APP, PROJECT_ROOT, Server, dev_server, gunicorn_server

SERVER_FIXTURES = (
    "gunicorn_sync",
    "gunicorn_gthread",
    "gunicorn_gevent",
    "werkzeug_dev",
)
SERVER_IDS = ("gunicorn-sync", "gunicorn-gthread", "gunicorn-gevent", "werkzeug")

_HERE = Path(__file__).resolve().parent


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "integration: runs the app under real HTTP servers (gunicorn, werkzeug) in subprocesses",
    )


def pytest_collection_modifyitems(
    config: pytest.Config, items: list[pytest.Item]
) -> None:
    for item in items:
        if _HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.integration)


def _require_app_module(app: str) -> None:
    """Skip (not fail) when the app's top-level module is not in the project yet."""
    module = app.partition(":")[0]
    top = module.split(".")[0]
    if not ((PROJECT_ROOT / f"{top}.py").exists() or (PROJECT_ROOT / top).is_dir()):
        pytest.skip(f"app module {module!r} not found under {PROJECT_ROOT}")


@pytest.fixture(scope="module")
def server_app() -> str:
    """``module:attr`` the server fixtures run; override per test module."""
    return DEFAULT_APP


@pytest.fixture(scope="module")
def server_env() -> Mapping[str, str] | None:
    """Extra environment for the server processes; override per test module."""
    return None


@pytest.fixture(scope="module")
def server_log_level() -> str:
    """gunicorn ``--log-level`` (``debug`` shows e.g. "Ignoring EPIPE")."""
    return "debug"


def _gunicorn(
    worker: str, app: str, env: Mapping[str, str] | None, level: str
) -> Iterator[Server]:
    _require_app_module(app)
    with gunicorn_server(
        app, worker, workers=1, threads=4, env=env, log_level=level
    ) as server:
        yield server


@pytest.fixture(scope="module")
def gunicorn_sync(
    server_app: str, server_env: Mapping[str, str] | None, server_log_level: str
) -> Iterator[Server]:
    yield from _gunicorn("sync", server_app, server_env, server_log_level)


@pytest.fixture(scope="module")
def gunicorn_gthread(
    server_app: str, server_env: Mapping[str, str] | None, server_log_level: str
) -> Iterator[Server]:
    yield from _gunicorn("gthread", server_app, server_env, server_log_level)


@pytest.fixture(scope="module")
def gunicorn_gevent(
    server_app: str, server_env: Mapping[str, str] | None, server_log_level: str
) -> Iterator[Server]:
    yield from _gunicorn("gevent", server_app, server_env, server_log_level)


@pytest.fixture(scope="module")
def werkzeug_dev(
    server_app: str, server_env: Mapping[str, str] | None
) -> Iterator[Server]:
    _require_app_module(server_app)
    with dev_server(server_app, threaded=True, env=server_env) as server:
        yield server


@pytest.fixture(scope="module", params=SERVER_FIXTURES, ids=SERVER_IDS)
def any_server(request: pytest.FixtureRequest) -> Server:
    """Each of the four servers in turn (same instances as the named fixtures)."""
    server: Server = request.getfixturevalue(request.param)
    return server
