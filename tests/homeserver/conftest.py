"""Fixtures for the homeserver example and the notifier: PostgreSQL, real servers."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]
for path in (PROJECT_ROOT, PROJECT_ROOT / "tests"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from _postgres import PostgresServer, postgres_binaries_or_fail, running_postgres  # noqa: E402


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One throwaway PostgreSQL for the session (fails under CI when missing)."""
    bindir = postgres_binaries_or_fail()
    with running_postgres(bindir) as server:
        yield server


# -- the homeserver under a real gunicorn --------------------------------------

from integration.servers import Server, free_port, gunicorn_server  # noqa: E402

HS_CONFIG = PROJECT_ROOT / "examples" / "homeserver" / "gunicorn.conf.py"
HS_APP = "examples.homeserver.app:app"
READY_PATH = "/_matrix/client/versions"


def homeserver_env(database: str, **extra: str) -> dict[str, str]:
    # bcrypt's lowest cost: the tests register many users (the hashing's own test sets its cost).
    return {
        "SYNWSGI_HS_DATABASE": database,
        "SYNWSGI_PARKED_POLLS": "1000",
        "SYNWSGI_HS_BCRYPT_ROUNDS": "4",
        **extra,
    }


@contextlib.contextmanager
def start_homeserver(database: str, workers: int = 1, **env: str) -> Iterator[Server]:
    """gunicorn with the example's own config file and its default worker (PyWSGIWorker); its metrics
    listener on a free port of its own (`server.metrics_port`)."""
    metrics_port = free_port()
    env = {"SYNWSGI_HS_METRICS_BIND": f"127.0.0.1:{metrics_port}", **env}
    with gunicorn_server(
        HS_APP,
        "pywsgi",
        workers=workers,
        config=HS_CONFIG,
        env=homeserver_env(database, **env),
        ready_path=READY_PATH,
        log_level="info",
        timeout=30.0,
    ) as server:
        server.metrics_port = metrics_port  # type: ignore[attr-defined]
        yield server


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def homeserver(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The example homeserver on gunicorn (PyWSGIWorker), on SQLite, then on PostgreSQL."""
    if request.param == "sqlite":
        database = str(tmp_path_factory.mktemp("hs") / "homeserver.db")
    else:
        pg: PostgresServer = request.getfixturevalue("postgres")
        database = pg.create_database(f"hs_{request.module.__name__.rsplit('.', 1)[-1]}")
    with start_homeserver(database) as server:
        server.database = database  # type: ignore[attr-defined]
        yield server


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> object:
    """On a failure, attach the log tail of every homeserver the test used."""
    report = yield
    if report.failed:
        for name, value in getattr(item, "funcargs", {}).items():
            servers = (
                [value]
                if isinstance(value, Server)
                else [server for server in vars(value).values() if isinstance(server, Server)]
                if hasattr(value, "__dict__")
                else []
            )
            for server in servers:
                report.sections.append(
                    (f"{name}: {server.name} on port {server.port} log tail", server.log_tail(40))
                )
    return report
