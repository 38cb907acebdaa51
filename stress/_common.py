"""What the stress scripts share: servers, a lean keep-alive HTTP client, figures.

Servers come from the integration harness (`tests/integration/servers.py`):
gunicorn on 127.0.0.1 and a free port, configured by the repository's
`gunicorn.conf.py`, one worker, always stopped by PID (SIGTERM, then SIGKILL
to its process group), whatever happens.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[1]
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

from tests.integration.servers import (  # noqa: E402 - needs the path above
    HOST,
    Server,
    gunicorn_server,
    http_get,
    open_fds,
    pid_alive,
    thread_count,
    worker_rss_kib,
)

GUNICORN_CONF = PROJECT_ROOT / "gunicorn.conf.py"
STRESS_APP = "stress.app:app"

__all__ = [
    "GUNICORN_CONF",
    "HOST",
    "PROJECT_ROOT",
    "STRESS_APP",
    "Client",
    "Server",
    "Verdict",
    "http_get",
    "introspect",
    "open_fds",
    "percentiles",
    "pid_alive",
    "say",
    "server",
    "thread_count",
    "worker_pid",
    "worker_rss_kib",
]


def say(*parts: object) -> None:
    """Print a line at once (the scripts' output is their report)."""
    sys.stdout.write(" ".join(str(part) for part in parts) + "\n")
    sys.stdout.flush()


@contextlib.contextmanager
def server(
    kind: str,
    *,
    app: str = STRESS_APP,
    log_level: str = "warning",
    worker_timeout: int = 30,
    threads: int = 8,
    env: Mapping[str, str] | None = None,
) -> Iterator[Server]:
    """gunicorn with `gunicorn.conf.py`, one `kind` worker, Prometheus dir in a temp dir."""
    with tempfile.TemporaryDirectory(prefix="synwsgi-stress-prom-") as prom:
        full_env = {
            "SYNWSGI_WORKERS": "1",
            "PROMETHEUS_MULTIPROC_DIR": prom,
            "SYNWSGI_LOG_LEVEL": log_level,
            **(env or {}),
        }
        with gunicorn_server(
            app,
            kind,
            config=GUNICORN_CONF,
            env=full_env,
            threads=threads,
            ready_path="/_matrix/client/versions",
            log_level=log_level,
            worker_timeout=worker_timeout,
            timeout=30,
        ) as running:
            yield running


def worker_pid(running: Server) -> int:
    pids = running.worker_pids()
    if len(pids) != 1:
        raise RuntimeError(f"expected one worker, got {pids}")
    return pids[0]


def introspect(running: Server, collect: bool = True) -> dict[str, Any]:
    """The worker's view of itself (`/_stress/introspect` of stress/app.py)."""
    status, _, body = http_get(running, f"/_stress/introspect?collect={'true' if collect else 'false'}")
    if status != 200:
        raise RuntimeError(f"introspect: {status} {body[:200]!r}")
    result: dict[str, Any] = json.loads(body)
    return result


def percentiles(samples: Sequence[float]) -> dict[str, float]:
    """p50/p90/p99/max in milliseconds."""
    if not samples:
        return {"n": 0, "p50": 0.0, "p90": 0.0, "p99": 0.0, "max": 0.0}
    ordered = sorted(samples)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    return {
        "n": len(ordered),
        "p50": round(at(0.50), 2),
        "p90": round(at(0.90), 2),
        "p99": round(at(0.99), 2),
        "max": round(ordered[-1] * 1000, 2),
        "mean": round(statistics.fmean(ordered) * 1000, 2),
    }


class Verdict:
    """Collects checks; prints them and the figures; gives the exit status."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.failures: list[str] = []
        self.figures: dict[str, Any] = {}
        self.started = time.monotonic()

    def check(self, ok: bool, what: str) -> bool:
        say(("  ok   " if ok else "  FAIL ") + what)
        if not ok:
            self.failures.append(what)
        return ok

    def figure(self, key: str, value: Any) -> None:
        self.figures[key] = value

    def finish(self) -> int:
        self.figures["elapsed_s"] = round(time.monotonic() - self.started, 1)
        say(f"RESULT {self.name} " + json.dumps({"ok": not self.failures, **self.figures}, sort_keys=True))
        if self.failures:
            say(f"{self.name}: {len(self.failures)} check(s) failed:")
            for failure in self.failures:
                say("  - " + failure)
            return 1
        say(f"{self.name}: all checks passed")
        return 0


# -- a lean HTTP/1.1 keep-alive client -------------------------------------------------------


class HTTPError(Exception):
    """The server's answer could not be read (closed, reset, malformed)."""


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


class Client:
    """One keep-alive connection, reopened when the server closes it.

    Raw sockets and a minimal parser: cheaper per request than http.client,
    so a single client process can keep one gunicorn worker busy.
    """

    def __init__(self, host: str, port: int, timeout: float = 30.0) -> None:
        self.address = (host, port)
        self.timeout = timeout
        self.sock: socket.socket | None = None
        self.reader: Any = None
        self.reconnects = 0

    def close(self) -> None:
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.close()
        self.sock = self.reader = None

    def _connect(self) -> None:
        self.close()
        self.sock = socket.create_connection(self.address, timeout=self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader = self.sock.makefile("rb", buffering=65536)
        self.reconnects += 1

    def request(self, method: str, target: str, body: bytes | None = None, headers: str = "") -> Reply:
        head = f"{method} {target} HTTP/1.1\r\nHost: {self.address[0]}\r\n{headers}"
        if body is not None:
            head += f"Content-Length: {len(body)}\r\nContent-Type: application/json\r\n"
        data = (head + "\r\n").encode("latin-1") + (body or b"")
        for attempt in (1, 2):
            fresh = self.sock is None
            if fresh:
                self._connect()
            assert self.sock is not None
            try:
                self.sock.sendall(data)
                return self._read(method == "HEAD")
            except (HTTPError, OSError):
                self.close()
                # A keep-alive connection the server had just closed: retry once on a fresh one.
                if fresh or attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _readline(self) -> bytes:
        line: bytes = self.reader.readline(65537)
        if not line:
            raise HTTPError("connection closed")
        return line

    def _read(self, head: bool) -> Reply:
        parts = self._readline().split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
            raise HTTPError(f"bad status line {parts!r}")
        status = int(parts[1])
        headers: dict[str, str] = {}
        while True:
            line = self._readline()
            if line in (b"\r\n", b"\n"):
                break
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        body = b""
        if not head and status not in (204, 304):
            if "chunked" in headers.get("transfer-encoding", ""):
                pieces = []
                while True:
                    size = int(self._readline().split(b";")[0], 16)
                    if size == 0:
                        while self._readline() not in (b"\r\n", b"\n"):
                            pass
                        break
                    pieces.append(self.reader.read(size))
                    self._readline()
                body = b"".join(pieces)
            elif "content-length" in headers:
                body = self.reader.read(int(headers["content-length"]))
            else:
                body = self.reader.read()
                self.close()
        if headers.get("connection", "").lower() == "close":
            self.close()
        return Reply(status, headers, body)


def rss_fds(pid: int) -> tuple[int, int]:
    return worker_rss_kib(pid), len(open_fds(pid))


def env_flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0")
