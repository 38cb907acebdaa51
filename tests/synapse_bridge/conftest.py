"""A real `SynapseHomeServer` on SQLite served through synwsgi's Twisted bridge.

One server per module and server kind (gunicorn gthread, gunicorn gevent,
Werkzeug's dev server), each on a fresh homeserver in a temporary directory.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from examples.synapse_bridge.homeserver import write_config
from tests.integration.servers import PROJECT_ROOT, Server, dev_server, gunicorn_server

APP = "examples.synapse_bridge.app:app"
CONFIG = PROJECT_ROOT / "examples" / "synapse_bridge" / "gunicorn.conf.py"
READY_PATH = "/_matrix/client/versions"
KINDS = ("gthread", "gevent", "werkzeug")


def start_bridge(kind: str, config_path: Path) -> contextlib.AbstractContextManager[Server]:
    env = {"SYNWSGI_SYNAPSE_CONFIG": str(config_path)}
    if kind == "werkzeug":
        return dev_server(APP, env=env, ready_path=READY_PATH, timeout=60.0)
    return gunicorn_server(
        APP,
        kind,
        config=CONFIG,
        threads=16,
        env=env,
        ready_path=READY_PATH,
        timeout=60.0,
        log_level="info",
    )


@pytest.fixture(scope="module", params=KINDS)
def bridge(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Synapse's client servlets behind synwsgi on one server kind."""
    config_path = write_config(tmp_path_factory.mktemp("synapse"))
    with start_bridge(request.param, config_path) as server:
        yield server


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> object:
    """On a failure, attach the server's log tail."""
    report = yield
    if report.failed:
        server = getattr(item, "funcargs", {}).get("bridge")
        if isinstance(server, Server):
            report.sections.append((f"log of {server.name}", server.log()[-8000:]))
    return report
