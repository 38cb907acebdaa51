"""Fixtures for the deployment tests: gunicorn as deploy/synwsgi.service runs it, nginx as
deploy/nginx/ configures it, both on 127.0.0.1 and free ports.

The configs are the files the docs include, read at test time and templated
only for ports and paths (``site_config``), so a change to them is tested.
Every test here gets the ``deploy`` marker.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._nginx import Nginx, nginx_server, require_nginx, self_signed_cert
from tests.integration.servers import PROJECT_ROOT, Server, gunicorn_server

DEPLOY = PROJECT_ROOT / "deploy"
SITE_CONF = DEPLOY / "nginx" / "synwsgi.conf"
UPSTREAM_CONF = DEPLOY / "nginx" / "synwsgi-upstream.conf"
PROXY_SNIPPET = DEPLOY / "nginx" / "synwsgi-proxy.conf"
UNIT = DEPLOY / "synwsgi.service"
SERVER_NAME = "matrix.example.org"
CERT_PATH = f"/etc/letsencrypt/live/{SERVER_NAME}/fullchain.pem"
KEY_PATH = f"/etc/letsencrypt/live/{SERVER_NAME}/privkey.pem"

_HERE = Path(__file__).resolve().parent


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "deploy: docs, packaging and nginx deployment tests")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    ours = [item for item in items if _HERE in Path(str(item.path)).resolve().parents]
    for item in ours:
        item.add_marker(pytest.mark.deploy)


def _replace(text: str, old: str, new: str) -> str:
    assert old in text, f"the deploy config no longer contains {old!r}: update the test's templating"
    return text.replace(old, new)


def site_config(
    text: str, *, port: int, upstream_ports: list[int], cert: Path, key: Path, host: str = "127.0.0.1"
) -> str:
    """A deploy/nginx site file with its listen port, upstream ports and cert paths replaced."""
    text = _replace(text, "listen 443 ssl;", f"listen {host}:{port} ssl;")
    text = _replace(text, CERT_PATH, str(cert))
    text = _replace(text, KEY_PATH, str(key))
    for default, port_ in zip((8008, 8009), upstream_ports, strict=False):
        text = _replace(text, f"127.0.0.1:{default}", f"127.0.0.1:{port_}")
    return text


def unit_environment() -> dict[str, str]:
    """The ``Environment=`` settings of deploy/synwsgi.service."""
    env: dict[str, str] = {}
    for line in UNIT.read_text().splitlines():
        match = re.fullmatch(r"Environment=(\w+)=(.*)", line.strip())
        if match:
            env[match[1]] = match[2]
    return env


@pytest.fixture(scope="package")
def nginx_binary() -> str:
    return require_nginx()


@pytest.fixture(scope="package")
def certificate() -> Iterator[tuple[Path, Path]]:
    with tempfile.TemporaryDirectory(prefix="synwsgi-cert-") as tmp:
        yield self_signed_cert(Path(tmp), SERVER_NAME)


def _gunicorn(behind_proxy: bool) -> Iterator[Server]:
    env = unit_environment()
    if not behind_proxy:
        env.pop("SYNWSGI_BEHIND_PROXY")
    with tempfile.TemporaryDirectory(prefix="synwsgi-prom-") as metrics_dir:
        env["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
        # The repo's gunicorn.conf.py, as the unit's `gunicorn wsgi:app` reads it;
        # one worker, so /_demo/stats sees every request.
        with gunicorn_server(
            "wsgi:app",
            env["SYNWSGI_WORKER_CLASS"],
            workers=1,
            env=env,
            config=PROJECT_ROOT / "gunicorn.conf.py",
            ready_path="/_matrix/client/versions",
        ) as server:
            yield server


@pytest.fixture(scope="package")
def gunicorn_proxied(nginx_binary: str) -> Iterator[Server]:
    """The showcase under gunicorn with the unit's environment (behind_proxy on)."""
    yield from _gunicorn(behind_proxy=True)


@pytest.fixture(scope="package")
def gunicorn_direct(nginx_binary: str) -> Iterator[Server]:
    """The same without SYNWSGI_BEHIND_PROXY: X-Forwarded-For is not trusted."""
    yield from _gunicorn(behind_proxy=False)


def start_nginx(site_file: Path, upstream_ports: list[int], cert: tuple[Path, Path]) -> Iterator[Nginx]:
    text = site_file.read_text()
    with nginx_server(
        lambda port, _dir: site_config(
            text, port=port, upstream_ports=upstream_ports, cert=cert[0], key=cert[1]
        ),
        files={"snippets/synwsgi-proxy.conf": PROXY_SNIPPET.read_text()},
    ) as nginx:
        yield nginx


@pytest.fixture(scope="package")
def nginx_proxied(gunicorn_proxied: Server, certificate: tuple[Path, Path]) -> Iterator[Nginx]:
    """deploy/nginx/synwsgi.conf in front of ``gunicorn_proxied``."""
    yield from start_nginx(SITE_CONF, [gunicorn_proxied.port], certificate)


@pytest.fixture(scope="package")
def nginx_direct(gunicorn_direct: Server, certificate: tuple[Path, Path]) -> Iterator[Nginx]:
    """deploy/nginx/synwsgi.conf in front of ``gunicorn_direct``."""
    yield from start_nginx(SITE_CONF, [gunicorn_direct.port], certificate)
