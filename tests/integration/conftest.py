"""Fixtures that run the app under real servers.

Server fixtures are module-scoped (one server per kind per test module, only
started when a test asks for it) and parametrized by ``any_server``:

* ``gunicorn_sync``, ``gunicorn_gthread``, ``gunicorn_gevent``,
  ``gunicorn_pywsgi`` (synwsgi's ``PyWSGIWorker``: gunicorn's ``gevent_pywsgi``
  with its fixes): one worker each (``gthread`` with 4 threads), log level ``debug``;
* ``werkzeug_dev``: ``werkzeug.serving.run_simple(threaded=True)``;
* ``any_server``: each of the five in turn;
* ``keepalive_server``: the three that keep HTTP/1.1 connections open between
  requests (gunicorn ``gthread``, ``gevent`` and ``pywsgi``);
* ``closing_server``: the two that close the connection after every response
  (gunicorn ``sync`` has no keep-alive; the werkzeug dev server always sends
  ``Connection: close``), where keep-alive and pipelining cannot apply.

Tests can record measured numbers with the ``measure`` fixture; they are
printed in a table at the end of the run (also with ``-q``).

The app defaults to ``wsgi:app`` (``/work/main/wsgi.py``). A test module can
override the module-scoped ``server_app``, ``server_env`` or
``server_log_level`` fixtures to change what the servers run. A test whose app
module does not exist *fails* (a missing app is a broken suite, never a skip).

Every test under this directory gets the ``integration`` marker, so
``pytest -m "not integration"`` leaves them out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from .servers import DEFAULT_APP, PROJECT_ROOT, Server, dev_server, gunicorn_server

SERVER_FIXTURES = (
    "gunicorn_sync",
    "gunicorn_gthread",
    "gunicorn_gevent",
    "gunicorn_pywsgi",
    "werkzeug_dev",
)
SERVER_IDS = ("gunicorn-sync", "gunicorn-gthread", "gunicorn-gevent", "gunicorn-pywsgi", "werkzeug")

_HERE = Path(__file__).resolve().parent


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "integration: runs the app under real HTTP servers (gunicorn, werkzeug) in subprocesses",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.integration)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """On a failure, attach the log tail of every server the test used."""
    report = yield
    if report.failed:
        funcargs = getattr(item, "funcargs", {})
        seen: set[int] = set()
        for name, value in funcargs.items():
            if isinstance(value, Server) and id(value) not in seen:
                seen.add(id(value))
                state = "running" if value.running() else f"exited {value.process.returncode}"
                report.sections.append(
                    (f"{value.name} log tail ({name}, pid {value.pid}, {state})", value.log_tail(60))
                )
    return report


def _require_app_module(app: str) -> None:
    """Fail (not skip) when the app's module is not in the project.

    ``module:attr`` must name a ``.py`` file or a package (``__init__.py``)
    under ``PROJECT_ROOT``, e.g. ``wsgi`` or ``tests.integration._failing_app``.
    """
    module = app.partition(":")[0]
    base = PROJECT_ROOT.joinpath(*module.split("."))
    if not (base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()):
        pytest.fail(
            f"app module {module!r} not found under {PROJECT_ROOT} "
            f"(looked for {base}.py and {base}/__init__.py)",
            pytrace=False,
        )


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


def _gunicorn(worker: str, app: str, env: Mapping[str, str] | None, level: str) -> Iterator[Server]:
    _require_app_module(app)
    with gunicorn_server(app, worker, workers=1, threads=4, env=env, log_level=level) as server:
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
def gunicorn_pywsgi(
    server_app: str, server_env: Mapping[str, str] | None, server_log_level: str
) -> Iterator[Server]:
    yield from _gunicorn("pywsgi", server_app, server_env, server_log_level)


@pytest.fixture(scope="module")
def werkzeug_dev(server_app: str, server_env: Mapping[str, str] | None) -> Iterator[Server]:
    _require_app_module(server_app)
    with dev_server(server_app, threaded=True, env=server_env) as server:
        yield server


@pytest.fixture(scope="module", params=SERVER_FIXTURES, ids=SERVER_IDS)
def any_server(request: pytest.FixtureRequest) -> Server:
    """Each of the five servers in turn (same instances as the named fixtures)."""
    server: Server = request.getfixturevalue(request.param)
    return server


@pytest.fixture(
    scope="module",
    params=("gunicorn_gthread", "gunicorn_gevent", "gunicorn_pywsgi"),
    ids=("gunicorn-gthread", "gunicorn-gevent", "gunicorn-pywsgi"),
)
def keepalive_server(request: pytest.FixtureRequest) -> Server:
    """The servers that keep connections alive (and so see pipelining)."""
    server: Server = request.getfixturevalue(request.param)
    return server


@pytest.fixture(
    scope="module",
    params=("gunicorn_sync", "werkzeug_dev"),
    ids=("gunicorn-sync", "werkzeug"),
)
def closing_server(request: pytest.FixtureRequest) -> Server:
    """The servers that close the connection after every response."""
    server: Server = request.getfixturevalue(request.param)
    return server


# --------------------------------------------------------------------------
# Measurements: printed at the end of the run
# --------------------------------------------------------------------------

_MEASUREMENTS: list[tuple[str, str, float, str]] = []


@pytest.fixture
def measure(request: pytest.FixtureRequest) -> Callable[[str, float, str], None]:
    """``measure(name, value, unit)``: keep a number for the end-of-run table."""

    def record(name: str, value: float, unit: str) -> None:
        _MEASUREMENTS.append((request.node.nodeid, name, value, unit))
        print(f"{request.node.name}: {name} = {value:.1f} {unit}")

    return record


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _MEASUREMENTS:
        return
    terminalreporter.section("integration measurements")
    for nodeid, name, value, unit in _MEASUREMENTS:
        test = nodeid.rpartition("::")[2]
        terminalreporter.write_line(f"{test:<70} {name:<28} {value:>10.1f} {unit}")
