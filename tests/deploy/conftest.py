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


#: where systemd creates each kind of directory the unit asks for
_UNIT_DIRECTORIES = {
    "RuntimeDirectory": "/run",
    "StateDirectory": "/var/lib",
    "CacheDirectory": "/var/cache",
    "LogsDirectory": "/var/log",
}


def unit_directories() -> list[str]:
    """The absolute paths that the unit's ``RuntimeDirectory=``, ``StateDirectory=``, ...
    lines make systemd create."""
    paths = []
    for line in UNIT.read_text().splitlines():
        key, _, value = line.strip().partition("=")
        if key in _UNIT_DIRECTORIES:
            paths += [f"{_UNIT_DIRECTORIES[key]}/{name}" for name in value.split()]
    return paths


def unit_tree(root: Path) -> dict[str, str]:
    """The unit's environment with its absolute paths moved under `root`, where exactly the
    directories systemd would create for the unit exist (and their parents: /run, /var/lib)."""
    for path in unit_directories():
        (root / path.lstrip("/")).mkdir(parents=True, exist_ok=True)
    env = unit_environment()
    for name, value in env.items():
        if any(value.startswith(prefix + "/") for prefix in _UNIT_DIRECTORIES.values()):
            env[name] = str(root / value.lstrip("/"))
    return env


@pytest.fixture(scope="package")
def nginx_binary() -> str:
    return require_nginx()


@pytest.fixture(scope="package")
def certificate() -> Iterator[tuple[Path, Path]]:
    with tempfile.TemporaryDirectory(prefix="synwsgi-cert-") as tmp:
        yield self_signed_cert(Path(tmp), SERVER_NAME)


def _gunicorn(behind_proxy: bool) -> Iterator[Server]:
    with tempfile.TemporaryDirectory(prefix="synwsgi-unit-") as root:
        # The unit's paths (PROMETHEUS_MULTIPROC_DIR under its RuntimeDirectory) in a
        # temporary tree holding exactly the directories systemd creates for it.
        env = unit_tree(Path(root))
        if not behind_proxy:
            env.pop("SYNWSGI_BEHIND_PROXY")
        # The repo's gunicorn.conf.py, as the unit's `gunicorn wsgi:app` reads it;
        # one worker, so /_demo/stats sees every request.
        # The unit leaves the worker class to gunicorn.conf.py's default, PyWSGIWorker.
        with gunicorn_server(
            "wsgi:app",
            env.get("SYNWSGI_WORKER_CLASS", "pywsgi"),
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
