"""Real gunicorn servers on loopback: start, probe, stop (by process group)."""

from __future__ import annotations

import contextlib
import ctypes
import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from bench.candidates import SYNWSGI, gunicorn_spec, load_synwsgi_app
from bench.model import Row, Status, Unavailable

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
WORKERS = 2
BOOT_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
PROBE_TARGET = "/_bench/ready"


class ServerError(Exception):
    """A server did not start or did not answer as expected."""


PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def die_with_parent() -> None:
    """``preexec_fn``: on Linux, SIGTERM this child when the bench process dies,
    even by SIGKILL, so that no server outlives the suite."""
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def child_setup(cpus: Collection[int] | None = None) -> Callable[[], None]:
    """A ``preexec_fn``: :func:`die_with_parent`, then (if given) restrict the
    child and everything it forks to ``cpus``."""

    def setup() -> None:
        die_with_parent()
        if cpus:
            os.sched_setaffinity(0, cpus)

    return setup


def usable_cpus() -> list[int]:
    """The CPUs this process may run on, in order."""
    return sorted(os.sched_getaffinity(0))


def free_port() -> int:
    """A currently free TCP port on the loopback interface."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def http_get(port: int, target: str, timeout: float = 5.0) -> tuple[int, bytes]:
    """(status, body) of one GET to the loopback server on ``port``."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET", target)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def gunicorn_command(
    spec: str, worker_class: str, port: int, workers: int = WORKERS, config: Path | None = None
) -> list[str]:
    """Without ``config``, gunicorn reads the repository's ``gunicorn.conf.py``
    (it runs in ``ROOT``); the command line wins over either file."""
    return [
        sys.executable, "-m", "gunicorn",
        *(["--config", str(config)] if config is not None else []),
        "--worker-class", worker_class,
        "--workers", str(workers),
        "--bind", f"{HOST}:{port}",
        "--no-control-socket",
        "--chdir", str(ROOT),
        "--log-level", "warning",
        "--timeout", "120",
        "--graceful-timeout", "3",
        spec,
    ]  # fmt: skip


@dataclass
class Server:
    name: str
    worker_class: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    def worker_pids(self) -> list[int]:
        """The arbiter's children (its workers), found through ``/proc``."""
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:  # gone meanwhile
                continue
            # "pid (comm) state ppid ...": comm may hold spaces, so split after it
            if int(stat.rpartition(")")[2].split()[1]) == self.process.pid:
                pids.append(int(entry.name))
        return sorted(pids)

    def log_tail(self, lines: int = 3) -> str:
        """The last ``lines`` of the server's log, after the last exception
        line (``SomeError: why``) if there is one: the reason a worker failed
        to boot comes before the arbiter's closing lines."""
        try:
            text = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        errors = [line for line in text if re.match(r"^[\w.]+(Error|Exception): ", line)]
        return " | ".join(errors[-1:] + text[-lines:])

    def wait_ready(self, timeout_s: float = BOOT_TIMEOUT_S) -> None:
        """Block until the server answers any HTTP response."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServerError(f"exited {self.process.returncode}: {self.log_tail()}")
            try:
                http_get(self.port, PROBE_TARGET, timeout=1.0)
                return
            except OSError:
                time.sleep(0.1)
        raise ServerError(f"no answer within {timeout_s:.0f}s: {self.log_tail()}")

    def stop(self) -> None:
        """SIGINT (gunicorn quick shutdown) to the process group, then SIGKILL
        to whatever is left of the group (stray workers or a hung arbiter)."""
        for sig in (signal.SIGINT, signal.SIGKILL):
            _signal_group(self.process.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=STOP_TIMEOUT_S)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # group gone
        os.killpg(pgid, sig)


@dataclass(frozen=True)
class Launch:
    """How a pool starts its servers: ``gunicorn_command``'s ``workers`` and
    ``config``, the CPUs the server may use (None: any) and per-candidate
    extras: ``specs`` (the app of a name that is no peer) and ``env``."""

    workers: int = WORKERS
    config: Path | None = None
    cpus: Collection[int] | None = None
    specs: Mapping[str, str] = field(default_factory=dict)
    env: Mapping[str, Mapping[str, str]] = field(default_factory=dict)


def start_gunicorn(name: str, worker_class: str, log_dir: Path, launch: Launch | None = None) -> Server:
    """Start gunicorn for ``name`` in its own session; caller must stop it.

    Every server gets a fresh ``PROMETHEUS_MULTIPROC_DIR`` (as the repo's
    gunicorn.conf.py sets one), ``SYNWSGI_BENCH_ACCESS_LOG``, the file
    the production-hooks app writes its access lines to, and no metrics listener."""
    launch = launch or Launch()
    port = free_port()
    slug = "".join(c if c.isalnum() or c in "+-_" else "-" for c in name)
    log_path = log_dir / f"gunicorn-{slug}-{worker_class}-{port}.log"
    metrics_dir = log_dir / f"prometheus-{slug}-{worker_class}-{port}"
    metrics_dir.mkdir()
    env = {
        **os.environ,
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "SYNWSGI_BENCH_ACCESS_LOG": str(log_dir / f"access-{slug}-{worker_class}-{port}.log"),
        # gunicorn reads the repo's gunicorn.conf.py from the working directory: no
        # metrics listener (its fixed port would refuse every server but the first).
        "SYNWSGI_METRICS_BIND": "",
        **launch.env.get(name, {}),
    }
    spec = launch.specs.get(name) or gunicorn_spec(name)
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            gunicorn_command(spec, worker_class, port, launch.workers, launch.config),
            env=env,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=child_setup(launch.cpus),
        )
    return Server(name, worker_class, port, process, log_path)


@dataclass
class ServerPool:
    """Servers of one worker class for several candidates.

    A candidate that cannot be served is recorded in ``problems`` (status,
    reason) instead. Every started server is stopped on exit.
    """

    worker_class: str
    log_dir: Path
    launch: Launch = field(default_factory=Launch)
    servers: dict[str, Server] = field(default_factory=dict)
    problems: dict[str, tuple[Status, str]] = field(default_factory=dict)

    def start(self, name: str, check_target: str, expected: bytes | None) -> None:
        """Start ``name``; check ``check_target`` answers 200 (and ``expected``)."""
        try:
            if name == SYNWSGI:
                load_synwsgi_app()  # cheap pre-check: is wsgi:app importable?
        except Unavailable as exc:
            self.problems[name] = ("unavailable", str(exc))
            return
        server = start_gunicorn(name, self.worker_class, self.log_dir, self.launch)
        self.servers[name] = server
        try:
            server.wait_ready()
            _check_answer(server, check_target, expected)
        except (ServerError, OSError) as exc:
            self.problems[name] = ("error", f"{type(exc).__name__}: {exc}")
            server.stop()
            del self.servers[name]

    def problem_rows(self) -> list[Row]:
        return [Row(n, status=s, note=why) for n, (s, why) in self.problems.items()]

    def stop_all(self) -> None:
        for server in self.servers.values():
            server.stop()
        self.servers.clear()

    def __enter__(self) -> ServerPool:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop_all()


def _check_answer(server: Server, target: str, expected: bytes | None) -> None:
    status, body = http_get(server.port, target, timeout=30.0)
    if status != 200:
        raise ServerError(f"GET {target} answered {status}")
    if expected is not None and body != expected:
        raise ServerError(f"GET {target} body differs: {body[:60]!r}")
