"""Run Debian's nginx for a test: on 127.0.0.1, in a temporary directory, always stopped.

``nginx_server(http_config)`` writes a main ``nginx.conf`` into a fresh temp
dir (pid file, error log, access log and every temp path inside it, so
nothing under /etc, /var or /run is touched), puts ``http_config`` inside its
``http {}`` block, starts ``nginx -g 'daemon off;'`` as a subprocess in its
own session, waits until it accepts connections, yields an :class:`Nginx`,
and stops it (SIGQUIT, then SIGKILL to its process group) whatever happened.

``http_config`` is a callable ``(port, directory) -> str`` so the caller can
put the chosen free port and files of the temp dir (certificates, snippets)
into the server blocks it writes; ``files`` are written into the temp dir
first (``{"snippets/x.conf": text}``), relative ``include`` paths resolve
against it. The access log uses nginx's ``combined`` format, as an admin's
would.

A missing nginx FAILS the test when ``CI`` is set and skips it elsewhere
(``require_nginx``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

__all__ = ["Nginx", "find_nginx", "nginx_server", "require_nginx", "self_signed_cert"]

HOST = "127.0.0.1"

_MAIN_CONF = """\
{user}
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log info;
daemon off;

events {{
    worker_connections 256;
}}

http {{
    default_type application/octet-stream;
    access_log {dir}/access.log combined;
    client_body_temp_path {dir}/tmp/body;
    proxy_temp_path {dir}/tmp/proxy;
    fastcgi_temp_path {dir}/tmp/fastcgi;
    uwsgi_temp_path {dir}/tmp/uwsgi;
    scgi_temp_path {dir}/tmp/scgi;

{http}
}}
"""


def find_nginx() -> str | None:
    """The nginx binary (Debian puts it in /usr/sbin, often not on a user's PATH)."""
    for candidate in (shutil.which("nginx"), "/usr/sbin/nginx"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def require_nginx() -> str:
    """The nginx binary; a FAILURE in CI (``CI`` set) when it is missing, a skip elsewhere."""
    binary = find_nginx()
    if binary is None:
        message = "nginx is not installed: run `bash .ci/install-system.sh` as root"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return binary


def _free_port(host: str = HOST) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def self_signed_cert(directory: Path, name: str = "matrix.example.org") -> tuple[Path, Path]:
    """A throwaway certificate and key for ``name`` (openssl, EC P-256, valid one day)."""
    cert, key = directory / "fullchain.pem", directory / "privkey.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-nodes", "-days", "1",
            "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-subj", f"/CN={name}", "-addext", f"subjectAltName=DNS:{name}",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )  # fmt: skip
    return cert, key


@dataclass
class Nginx:
    """A running nginx: its port, directory and logs."""

    host: str
    port: int
    directory: Path
    process: subprocess.Popen[bytes]

    @property
    def access_log(self) -> Path:
        return self.directory / "access.log"

    @property
    def error_log(self) -> Path:
        return self.directory / "error.log"

    def access_lines(self) -> list[str]:
        try:
            return self.access_log.read_text("utf-8", "replace").splitlines()
        except FileNotFoundError:
            return []

    def error_text(self) -> str:
        try:
            return self.error_log.read_text("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def wait_for_access(self, needle: str, *, timeout: float = 10.0) -> str:
        """The first access-log line containing ``needle`` (nginx writes it when the request ends)."""
        deadline = time.monotonic() + timeout
        while True:
            for line in self.access_lines():
                if needle in line:
                    return line
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"nginx: no access line with {needle!r} within {timeout}s; access log:\n"
                    + "\n".join(self.access_lines()[-20:])
                    + f"\nerror log:\n{self.error_text()[-3000:]}"
                )
            time.sleep(0.05)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGQUIT)  # graceful: finish the requests in flight
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)
    # Workers orphaned by a master that died: the group is ours alone.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


@contextlib.contextmanager
def nginx_server(
    http_config: Callable[[int, Path], str],
    *,
    files: Mapping[str, str] | None = None,
    host: str = HOST,
    timeout: float = 10.0,
) -> Iterator[Nginx]:
    """Start nginx with ``http_config(port, directory)`` in its http block; always stop it."""
    binary = require_nginx()
    directory = Path(tempfile.mkdtemp(prefix="synwsgi-nginx-"))
    try:
        (directory / "tmp").mkdir()
        for name, text in (files or {}).items():
            path = directory / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        # As root, nginx's workers would drop to "nobody", who cannot use the
        # temp dir; a test nginx keeps the user that started it.
        user = "user root;" if os.geteuid() == 0 else ""
        for attempt in range(3):
            port = _free_port(host)
            conf = directory / "nginx.conf"
            conf.write_text(_MAIN_CONF.format(user=user, dir=directory, http=http_config(port, directory)))
            stderr_path = directory / "stderr.log"
            with open(stderr_path, "ab") as stderr:
                process = subprocess.Popen(
                    [binary, "-p", str(directory), "-c", str(conf), "-e", str(directory / "error.log")],
                    stdin=subprocess.DEVNULL,
                    stdout=stderr,
                    stderr=stderr,
                    start_new_session=True,
                )
            server = Nginx(host, port, directory, process)
            if _wait_ready(server, timeout):
                break
            _stop(process)
            log = server.error_text() + stderr_path.read_text("utf-8", "replace")
            if "Address already in use" in log and attempt < 2:
                continue
            raise AssertionError(
                f"nginx did not start on {host}:{port}; log:\n{log[-4000:]}\nconfig:\n{conf.read_text()}"
            )
        try:
            yield server
        finally:
            _stop(process)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _wait_ready(server: Nginx, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            return False
        try:
            with socket.create_connection((server.host, server.port), timeout=1.0):
                return True
        except OSError:
            time.sleep(0.05)
    return False
