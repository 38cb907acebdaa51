"""A throwaway PostgreSQL server for tests: Debian's binaries, a temp dir, 127.0.0.1.

`running_postgres()` runs `initdb` and `postgres` from Debian's `postgresql`
package (`/usr/lib/postgresql/<version>/bin`) in a fresh temporary directory,
as an unprivileged user (PostgreSQL refuses to run as root: when the tests run
as root, the server runs as `postgres` or `nobody`), listening on a free port
of 127.0.0.1 and on a unix socket in that directory, with trust
authentication. It is stopped (fast shutdown) and its directory removed at
the end.

Durability is turned off (`fsync`, `synchronous_commit`, `full_page_writes`):
the cluster dies with the test run anyway.

`postgres_binaries_or_fail()` is the fixture-side check: it returns the bin
directory, or fails the test when the binaries are missing and `CI` is set
(a missing service is a failure in CI, never a skip), or skips it locally.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

PG_ROOT = Path("/usr/lib/postgresql")


def find_postgres_bin() -> Path | None:
    """The newest Debian PostgreSQL bin directory with `initdb` and `postgres`, if any."""
    if not PG_ROOT.is_dir():
        return None
    candidates = sorted(
        (path for path in PG_ROOT.iterdir() if (path / "bin" / "initdb").exists()),
        key=lambda path: int(path.name) if path.name.isdigit() else 0,
    )
    return candidates[-1] / "bin" if candidates else None


def postgres_binaries_or_fail() -> Path:
    """The bin directory; otherwise fail under CI, skip elsewhere (for pytest fixtures)."""
    import pytest

    bindir = find_postgres_bin()
    if bindir is not None:
        return bindir
    message = "PostgreSQL binaries missing: apt-get install -y postgresql"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)
    raise AssertionError("unreachable")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _unprivileged_user() -> pwd.struct_passwd | None:
    """Who runs the server: nobody to switch to unless we are root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError("running as root and no 'postgres' or 'nobody' user to run PostgreSQL as")


@dataclass
class PostgresServer:
    """A running cluster: where it listens and how to reach it."""

    bindir: Path
    directory: Path
    port: int
    user: str
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def socket_dir(self) -> Path:
        return self.directory / "sock"

    def dsn(self, dbname: str = "postgres") -> str:
        """A libpq DSN over TCP on 127.0.0.1."""
        return f"host=127.0.0.1 port={self.port} user={self.user} dbname={dbname}"

    def unix_dsn(self, dbname: str = "postgres") -> str:
        """A libpq DSN over the unix socket."""
        return f"host={self.socket_dir} port={self.port} user={self.user} dbname={dbname}"

    def create_database(self, name: str) -> str:
        """Create database `name` (dropping any old one) and return its DSN."""
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.dsn(name)

    def log(self) -> str:
        path = self.directory / "postgres.log"
        return path.read_text(errors="replace") if path.exists() else ""


def _as_user(account: pwd.struct_passwd | None) -> dict[str, object]:
    if account is None:
        return {}
    return {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}


@contextlib.contextmanager
def running_postgres(
    bindir: Path | None = None, max_connections: int = 300, startup_timeout: float = 30.0
) -> Iterator[PostgresServer]:
    """Start a PostgreSQL cluster for the duration of the `with` block."""
    bindir = bindir or find_postgres_bin()
    if bindir is None:
        raise RuntimeError("PostgreSQL binaries not found under /usr/lib/postgresql")
    account = _unprivileged_user()
    directory = Path(tempfile.mkdtemp(prefix="synwsgi-pg-"))
    data = directory / "data"
    sock = directory / "sock"
    sock.mkdir()
    if account is not None:
        for path in (directory, sock):
            os.chown(path, account.pw_uid, account.pw_gid)
    directory.chmod(0o700)
    db_user = "synwsgi"
    server = PostgresServer(bindir, directory, _free_port(), db_user)
    env = {**os.environ, "LC_ALL": "C.UTF-8", "TZ": "UTC"}
    try:
        subprocess.run(
            [
                str(bindir / "initdb"),
                "-D",
                str(data),
                "-U",
                db_user,
                "--auth=trust",
                "--encoding=UTF8",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
            env=env,
            cwd=directory,
            **_as_user(account),  # type: ignore[arg-type]
        )
        log = open(directory / "postgres.log", "wb")  # noqa: SIM115 - lives as long as the server
        if account is not None:
            os.chown(directory / "postgres.log", account.pw_uid, account.pw_gid)
        server.process = subprocess.Popen(
            [
                str(bindir / "postgres"),
                "-D",
                str(data),
                "-h",
                "127.0.0.1",
                "-p",
                str(server.port),
                "-k",
                str(sock),
                "-c",
                f"max_connections={max_connections}",
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "shared_buffers=32MB",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=directory,
            **_as_user(account),  # type: ignore[arg-type]
        )
        log.close()
        deadline = time.monotonic() + startup_timeout
        while True:
            if server.process.poll() is not None:
                raise RuntimeError(f"postgres exited at startup:\n{server.log()}")
            ready = subprocess.run(
                [str(bindir / "pg_isready"), "-h", "127.0.0.1", "-p", str(server.port), "-U", db_user],
                capture_output=True,
            )
            if ready.returncode == 0:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"postgres not ready after {startup_timeout}s:\n{server.log()}")
            time.sleep(0.1)
        yield server
    finally:
        if server.process is not None and server.process.poll() is None:
            server.process.send_signal(2)  # SIGINT: fast shutdown
            try:
                server.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.process.kill()
                server.process.wait()
        shutil.rmtree(directory, ignore_errors=True)
