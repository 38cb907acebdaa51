"""Real-server harness for the integration tests.

Starts gunicorn (``sync``, ``gthread``, ``gevent`` workers, and ``pywsgi``:
synwsgi's ``PyWSGIWorker``, gunicorn's ``gevent_pywsgi`` with its fixes) or werkzeug's
development server in a subprocess on ``127.0.0.1`` and an ephemeral port,
captures its output to a file (``Server.log()``), waits until it answers HTTP,
and always stops it again: SIGTERM to the server's PID, then SIGKILL to its
whole process group (each server runs in its own session) after a bound.

Also provides small raw-socket HTTP helpers (``raw_request``,
``open_connection``, ``read_response``), an ``http.client`` wrapper
(``http_get``/``http_request``) and ``/proc`` readers (``worker_rss_kib``,
``thread_count``, ``open_fds``, ``child_pids``).

Only the standard library is used (``psutil`` is not required).
"""

from __future__ import annotations

import atexit
import contextlib
import http.client
import io
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

__all__ = [
    "DEFAULT_APP",
    "GUNICORN_WORKERS",
    "HOST",
    "PROJECT_ROOT",
    "SAMPLE_APP",
    "WORKER_CLASSES",
    "HeaderList",
    "RawResponse",
    "Server",
    "ServerStartError",
    "child_pids",
    "dev_server",
    "free_port",
    "group_members",
    "gunicorn_server",
    "http_get",
    "http_request",
    "metrics_get",
    "open_connection",
    "open_fds",
    "pid_alive",
    "raw_request",
    "read_response",
    "thread_count",
    "worker_rss_kib",
]

HOST = "127.0.0.1"
PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_APP = "wsgi:app"
#: The dependency-free sample app used by ``test_harness.py``.
SAMPLE_APP = "tests.integration._sample_app:app"
GUNICORN_WORKERS = ("sync", "gthread", "gevent", "pywsgi")
#: Worker kinds that are not gunicorn's own names: the class gunicorn is given.
WORKER_CLASSES = {"pywsgi": "synwsgi.pywsgi_worker.PyWSGIWorker"}

#: How long to wait for the master to exit after SIGTERM, on top of the
#: server's own graceful timeout, before SIGKILLing the process group.
STOP_GRACE_EXTRA = 5.0

_ADDRESS_IN_USE = re.compile(r"Address already in use|Connection in use", re.IGNORECASE)


class ServerStartError(RuntimeError):
    """The server did not become ready; the message ends with its log tail.

    ``pid`` is the (already stopped) server process, ``log`` its whole output.
    """

    def __init__(self, message: str, *, pid: int, log: str) -> None:
        super().__init__(message)
        self.pid = pid
        self.log = log


# --------------------------------------------------------------------------
# /proc helpers
# --------------------------------------------------------------------------


def _read_stat(pid: int) -> tuple[str, int, int] | None:
    """Return (state, ppid, pgrp) of ``pid`` from /proc, or None if gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name is in parentheses and may contain spaces/parens.
    rest = raw[raw.rindex(")") + 2 :].split()
    return rest[0], int(rest[1]), int(rest[2])


def pid_alive(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie."""
    stat = _read_stat(pid)
    return stat is not None and stat[0] not in ("Z", "X", "x")


def _all_pids() -> Iterator[int]:
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            yield int(entry.name)


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes whose process group is ``pgid``."""
    members = []
    for pid in _all_pids():
        stat = _read_stat(pid)
        if stat is not None and stat[2] == pgid and stat[0] not in ("Z", "X", "x"):
            members.append(pid)
    return members


def child_pids(pid: int) -> list[int]:
    """Live direct children of ``pid``.

    Uses ``/proc/<pid>/task/<tid>/children`` (needs CONFIG_PROC_CHILDREN) and
    falls back to scanning ``/proc/*/stat`` for the parent PID.
    """
    children: set[int] = set()
    task_dir = Path(f"/proc/{pid}/task")
    try:
        tids = [entry.name for entry in os.scandir(task_dir)]
    except (FileNotFoundError, ProcessLookupError):
        return []
    found_file = False
    for tid in tids:
        try:
            text = (task_dir / tid / "children").read_text()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        found_file = True
        children.update(int(tok) for tok in text.split())
    if not found_file:
        for other in _all_pids():
            stat = _read_stat(other)
            if stat is not None and stat[1] == pid:
                children.add(other)
    return sorted(c for c in children if pid_alive(c))


def worker_rss_kib(pid: int) -> int:
    """Resident set size of ``pid`` in KiB (``VmRSS`` from /proc/<pid>/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise ValueError(f"no VmRSS for pid {pid} (kernel thread or zombie?)")


def thread_count(pid: int) -> int:
    """Number of threads of ``pid`` (``Threads`` from /proc/<pid>/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise ValueError(f"no Threads line for pid {pid}")


def open_fds(pid: int) -> dict[int, str]:
    """Open file descriptors of ``pid``: ``{fd: readlink target}``.

    ``len(open_fds(pid))`` is the fd count; sockets look like ``socket:[ino]``.
    """
    fds: dict[int, str] = {}
    fd_dir = f"/proc/{pid}/fd"
    for name in os.listdir(fd_dir):
        try:
            fds[int(name)] = os.readlink(f"{fd_dir}/{name}")
        except FileNotFoundError:  # closed while we were looking
            continue
    return fds


# --------------------------------------------------------------------------
# Server process management
# --------------------------------------------------------------------------

_LIVE: dict[int, subprocess.Popen[bytes]] = {}


def _kill_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _stop_process(proc: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM the server's PID, wait ``grace`` s, then SIGKILL its group.

    The process was started with ``start_new_session=True``, so its PID is
    also its process-group id; only that group is ever signalled.
    """
    pgid = proc.pid
    try:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                _kill_group(pgid, signal.SIGKILL)
                proc.wait(5)
        # Stragglers (e.g. workers orphaned by a master that died): the group
        # id cannot be reused while any member is alive, so this is safe.
        deadline = time.monotonic() + 2.0
        while group_members(pgid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if group_members(pgid):
            _kill_group(pgid, signal.SIGKILL)
            deadline = time.monotonic() + 2.0
            while group_members(pgid) and time.monotonic() < deadline:
                time.sleep(0.05)
    finally:
        _LIVE.pop(proc.pid, None)


@atexit.register
def _kill_leftovers() -> None:  # pragma: no cover - safety net only
    for proc in list(_LIVE.values()):
        _kill_group(proc.pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            proc.wait(2)


def free_port(host: str = HOST) -> int:
    """An ephemeral TCP port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    """A running (or stopped) server subprocess."""

    kind: str  # "sync" | "gthread" | "gevent" | "pywsgi" | "werkzeug"
    host: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    argv: list[str]
    _final_log: str | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.kind if self.kind == "werkzeug" else f"gunicorn-{self.kind}"

    @property
    def is_gunicorn(self) -> bool:
        return self.kind != "werkzeug"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def running(self) -> bool:
        return self.process.poll() is None

    def worker_pids(self) -> list[int]:
        """PIDs of the processes that run the application.

        gunicorn: the master's live children (the workers). werkzeug dev
        server: the server process itself (it serves in threads).
        """
        if not self.running():
            return []
        if self.kind == "werkzeug":
            return [self.pid]
        return child_pids(self.pid)

    # -- log access ------------------------------------------------------

    def log(self, since: int = 0) -> str:
        """Everything the server wrote to stdout/stderr (from char ``since``)."""
        if self._final_log is not None:
            return self._final_log[since:]
        try:
            return self.log_path.read_bytes().decode("utf-8", "replace")[since:]
        except FileNotFoundError:
            return ""

    def log_mark(self) -> int:
        """Current log length; pass it to ``log(since=...)``/``wait_for_log``."""
        return len(self.log())

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def wait_for_log(self, pattern: str | re.Pattern[str], *, timeout: float = 5.0, since: int = 0) -> str:
        """Wait until a log line matches ``pattern`` (substring or regex).

        Returns the first matching line; raises AssertionError with the log
        tail on timeout.
        """
        regex = pattern if isinstance(pattern, re.Pattern) else re.compile(re.escape(pattern))
        deadline = time.monotonic() + timeout
        while True:
            for line in self.log(since).splitlines():
                if regex.search(line):
                    return line
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"{self.name}: no log line matching {regex.pattern!r} within "
                    f"{timeout}s; log tail:\n{self.log_tail()}"
                )
            time.sleep(0.05)


def _base_env(env: Mapping[str, str] | None) -> dict[str, str]:
    merged = dict(os.environ)
    # Never let the caller's environment inject gunicorn options.
    merged.pop("GUNICORN_CMD_ARGS", None)
    merged["PYTHONUNBUFFERED"] = "1"
    # The showcase's gunicorn.conf.py serves metrics on a port of its own
    # (127.0.0.1:9101 by default): any free one here, so that servers running
    # side by side never clash; `metrics_get` finds it in the log.
    merged["SYNWSGI_METRICS_BIND"] = "127.0.0.1:0"
    if env:
        merged.update(env)
    return merged


_METRICS_AT = re.compile(r"Serving metrics at http://([\d.]+):(\d+)/metrics")


def metrics_get(server: Server, timeout: float = 10.0) -> tuple[int, bytes]:
    """GET the metrics listener that gunicorn.conf.py started (its address is logged)."""
    match = _METRICS_AT.search(server.wait_for_log(_METRICS_AT, timeout=timeout))
    assert match is not None
    connection = http.client.HTTPConnection(match[1], int(match[2]), timeout=timeout)
    try:
        connection.request("GET", "/metrics")
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def _probe_http(host: str, port: int, path: str) -> bool:
    conn = http.client.HTTPConnection(host, port, timeout=2.0)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        resp = conn.getresponse()
        resp.read()
        return True
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def _wait_ready(server: Server, ready_path: str, deadline: float, min_workers: int) -> None:
    last_error = "no attempt"
    while time.monotonic() < deadline:
        if not server.running():
            raise ServerStartError(
                f"{server.name} exited with code {server.process.returncode} during "
                f"startup.\ncommand: {' '.join(server.argv)}\nlog tail:\n{server.log_tail()}",
                pid=server.pid,
                log=server.log(),
            )
        try:
            with socket.create_connection((server.host, server.port), timeout=1.0):
                pass
        except OSError as exc:
            last_error = f"connect: {exc!r}"
            time.sleep(0.05)
            continue
        if not _probe_http(server.host, server.port, ready_path):
            last_error = f"no HTTP response to GET {ready_path}"
            time.sleep(0.05)
            continue
        if len(server.worker_pids()) >= min_workers:
            return
        last_error = f"only {len(server.worker_pids())}/{min_workers} workers up"
        time.sleep(0.05)
    raise ServerStartError(
        f"{server.name} not ready at {server.url}{ready_path} ({last_error}).\n"
        f"command: {' '.join(server.argv)}\nlog tail:\n{server.log_tail()}",
        pid=server.pid,
        log=server.log(),
    )


@contextlib.contextmanager
def _launch(
    kind: str,
    make_argv: Callable[[int], list[str]],
    *,
    host: str,
    cwd: str | os.PathLike[str],
    env: Mapping[str, str] | None,
    timeout: float,
    ready_path: str,
    min_workers: int,
    stop_grace: float,
    workdir: Path,
) -> Iterator[Server]:
    """Start, wait for readiness (retrying a taken port), yield, always stop."""
    attempts = 3
    for attempt in range(1, attempts + 1):
        port = free_port(host)
        argv = make_argv(port)
        log_path = workdir / f"{kind}-{port}.log"
        with open(log_path, "ab") as log_file:
            proc = subprocess.Popen(
                argv,
                cwd=os.fspath(cwd),
                env=_base_env(env),
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        _LIVE[proc.pid] = proc
        server = Server(kind=kind, host=host, port=port, process=proc, log_path=log_path, argv=argv)
        try:
            _wait_ready(server, ready_path, time.monotonic() + timeout, min_workers)
        except ServerStartError:
            _stop_process(proc, stop_grace)
            if attempt < attempts and _ADDRESS_IN_USE.search(server.log()):
                continue
            raise
        except BaseException:
            _stop_process(proc, stop_grace)
            raise
        try:
            yield server
        finally:
            _stop_process(proc, stop_grace)
            server._final_log = server.log()
        return
    raise AssertionError("unreachable")  # pragma: no cover


@contextlib.contextmanager
def _workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="synwsgi-it-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def gunicorn_server(
    app: str = DEFAULT_APP,
    worker: str = "sync",
    *,
    workers: int = 1,
    threads: int = 4,
    extra_args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    timeout: float = 20.0,
    config: str | os.PathLike[str] | None = None,
    ready_path: str = "/",
    graceful_timeout: int = 3,
    worker_timeout: int = 30,
    log_level: str = "info",
    cwd: str | os.PathLike[str] = PROJECT_ROOT,
    host: str = HOST,
) -> Iterator[Server]:
    """Run ``python -m gunicorn -k <worker> <app>`` on ``host``:<free port>.

    * ``worker``: ``sync``, ``gthread``, ``gevent``, ``pywsgi`` (synwsgi's
      ``PyWSGIWorker``) or any gunicorn worker class (``threads`` is only
      passed for ``gthread``: gunicorn silently turns ``sync`` with
      ``--threads > 1`` into ``gthread``).
    * ``config``: a gunicorn config file; by default an empty one, so a
      ``./gunicorn.conf.py`` in ``cwd`` is *not* picked up.
    * The control socket is disabled (``--no-control-socket``); access and
      error logs go to the captured output (``server.log()``).
    * ``timeout`` bounds startup; stopping is SIGTERM, then after
      ``graceful_timeout`` + 5 s SIGKILL to the process group.
    """
    with _workdir() as workdir:
        if config is None:
            config_path = workdir / "empty.gunicorn.conf.py"
            config_path.write_text("# intentionally empty\n")
        else:
            config_path = Path(config)

        def make_argv(port: int) -> list[str]:
            argv = [
                sys.executable,
                "-m",
                "gunicorn",
                "--config",
                os.fspath(config_path),
                "--worker-class",
                WORKER_CLASSES.get(worker, worker),
                "--workers",
                str(workers),
                "--bind",
                f"{host}:{port}",
                "--no-control-socket",
                "--graceful-timeout",
                str(graceful_timeout),
                "--timeout",
                str(worker_timeout),
                "--access-logfile",
                "-",
                "--error-logfile",
                "-",
                "--log-level",
                log_level,
            ]
            if worker == "gthread":
                argv += ["--threads", str(threads)]
            argv += list(extra_args)
            argv.append(app)
            return argv

        with _launch(
            worker,
            make_argv,
            host=host,
            cwd=cwd,
            env=env,
            timeout=timeout,
            ready_path=ready_path,
            min_workers=workers,
            stop_grace=graceful_timeout + STOP_GRACE_EXTRA,
            workdir=workdir,
        ) as server:
            yield server


_DEV_BOOTSTRAP = """\
import importlib, sys
from synwsgi.devserver import run_dev_server
target, host, port, threaded = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1"
module_name, _, attr = target.partition(":")
app = importlib.import_module(module_name)
for part in (attr or "application").split("."):
    app = getattr(app, part)
run_dev_server(app, host, port, threaded=threaded, use_reloader=False, use_debugger=False)
"""


@contextlib.contextmanager
def dev_server(
    app: str = DEFAULT_APP,
    *,
    threaded: bool = True,
    env: Mapping[str, str] | None = None,
    timeout: float = 20.0,
    ready_path: str = "/",
    cwd: str | os.PathLike[str] = PROJECT_ROOT,
    host: str = HOST,
) -> Iterator[Server]:
    """Run Werkzeug's dev server (``synwsgi.devserver``) for ``module:attr`` in a subprocess.

    No reloader, no debugger. Same interface as :func:`gunicorn_server`.
    """
    with _workdir() as workdir:

        def make_argv(port: int) -> list[str]:
            return [
                sys.executable,
                "-c",
                _DEV_BOOTSTRAP,
                app,
                host,
                str(port),
                "1" if threaded else "0",
            ]

        with _launch(
            "werkzeug",
            make_argv,
            host=host,
            cwd=cwd,
            env=env,
            timeout=timeout,
            ready_path=ready_path,
            min_workers=1,
            stop_grace=STOP_GRACE_EXTRA,
            workdir=workdir,
        ) as server:
            yield server


# --------------------------------------------------------------------------
# HTTP helpers
# --------------------------------------------------------------------------


class HeaderList(list[tuple[str, str]]):
    """Response headers in wire order; case-insensitive lookups."""

    def get(self, name: str, default: str | None = None) -> str | None:
        lname = name.lower()
        for key, value in self:
            if key.lower() == lname:
                return value
        return default

    def get_all(self, name: str) -> list[str]:
        lname = name.lower()
        return [value for key, value in self if key.lower() == lname]

    def __contains__(self, name: object) -> bool:
        if isinstance(name, str):
            return self.get(name) is not None
        return super().__contains__(name)


class RawResponse(NamedTuple):
    """A parsed response. ``complete`` is False when the body ended early:

    chunked: the terminating ``0\\r\\n\\r\\n`` never arrived; Content-Length:
    fewer bytes than announced; close-delimited: a timeout before EOF.
    """

    status: int
    headers: HeaderList
    body: bytes
    complete: bool
    reason: str = ""


def open_connection(server: Server, *, timeout: float = 5.0) -> socket.socket:
    """A connected TCP socket to the server, with a per-operation timeout."""
    return socket.create_connection((server.host, server.port), timeout=timeout)


def raw_request(server: Server, data: bytes, *, timeout: float = 5.0) -> bytes:
    """Send ``data`` verbatim; return everything received until close/timeout."""
    deadline = time.monotonic() + timeout
    chunks: list[bytes] = []
    with open_connection(server, timeout=timeout) as sock:
        sock.sendall(data)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            sock.settimeout(remaining)
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def _readline(fp: io.BufferedReader, limit: int = 65537) -> bytes:
    line = fp.readline(limit)
    if not line:
        raise EOFError
    return line


def read_response(
    sock: socket.socket | io.BufferedIOBase,
    *,
    head: bool = False,
    max_body: int | None = None,
) -> RawResponse:
    """Read one HTTP/1.x response from ``sock`` (status, headers, body).

    Handles Content-Length, chunked (``complete`` tells whether the
    terminating zero chunk and the final CRLF arrived) and close-delimited
    bodies. ``head=True`` for responses to HEAD (no body). Interim 1xx
    responses are skipped. Stops early (``complete=False``) after
    ``max_body`` body bytes, on EOF or on the socket's timeout.

    ``sock`` may also be a reader from ``sock.makefile("rb")``: pass the same
    reader for several responses on one connection (keep-alive, pipelining),
    since a fresh reader per response may lose bytes buffered by the last.
    """
    own = isinstance(sock, socket.socket)
    fp = sock.makefile("rb") if isinstance(sock, socket.socket) else sock
    try:
        while True:
            status_line = _readline(fp).decode("latin-1").rstrip("\r\n")
            parts = status_line.split(" ", 2)
            if len(parts) < 2 or not parts[0].startswith("HTTP/"):
                raise ValueError(f"bad status line: {status_line!r}")
            status = int(parts[1])
            reason = parts[2] if len(parts) > 2 else ""
            headers = HeaderList()
            while True:
                line = _readline(fp).decode("latin-1").rstrip("\r\n")
                if not line:
                    break
                name, _, value = line.partition(":")
                headers.append((name.strip(), value.strip()))
            if 100 <= status < 200 and status != 101:
                continue
            break

        if head or status in (204, 304) or 100 <= status < 200:
            return RawResponse(status, headers, b"", True, reason)

        body = bytearray()
        limit = max_body if max_body is not None else -1

        def over_limit() -> bool:
            return limit >= 0 and len(body) >= limit

        te = (headers.get("Transfer-Encoding") or "").lower()
        try:
            if "chunked" in te:
                while True:
                    size_line = _readline(fp).split(b";", 1)[0].strip()
                    size = int(size_line, 16)
                    if size == 0:
                        # trailers until the empty line
                        while _readline(fp).strip():
                            pass
                        return RawResponse(status, headers, bytes(body), True, reason)
                    data = fp.read(size)
                    body += data
                    if len(data) < size:
                        return RawResponse(status, headers, bytes(body), False, reason)
                    if _readline(fp) != b"\r\n":
                        raise ValueError("missing CRLF after chunk data")
                    if over_limit():
                        return RawResponse(status, headers, bytes(body), False, reason)
            length_header = headers.get("Content-Length")
            if length_header is not None:
                length = int(length_header)
                want = length if limit < 0 else min(length, limit)
                while len(body) < want:
                    data = fp.read1(want - len(body))
                    if not data:
                        break
                    body += data
                return RawResponse(status, headers, bytes(body), len(body) == length, reason)
            while not over_limit():
                data = fp.read1(65536)
                if not data:
                    return RawResponse(status, headers, bytes(body), True, reason)
                body += data
            return RawResponse(status, headers, bytes(body), False, reason)
        except (EOFError, TimeoutError, ConnectionResetError):
            return RawResponse(status, headers, bytes(body), False, reason)
    finally:
        if own:
            fp.close()


def http_request(
    server: Server,
    method: str,
    path: str,
    headers: Mapping[str, str] | None = None,
    body: bytes | None = None,
    *,
    timeout: float = 10.0,
) -> tuple[int, HeaderList, bytes]:
    """One request over a fresh ``http.client`` connection."""
    conn = http.client.HTTPConnection(server.host, server.port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=dict(headers or {}))
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, HeaderList(resp.getheaders()), data
    finally:
        conn.close()


def http_get(
    server: Server,
    path: str,
    headers: Mapping[str, str] | None = None,
    *,
    timeout: float = 10.0,
) -> tuple[int, HeaderList, bytes]:
    """``GET path`` via ``http.client``: (status, headers, body)."""
    return http_request(server, "GET", path, headers, timeout=timeout)
