"""Issue 9's smaller behaviours, on the wire of real servers.

Serves ``_pipeline_app.py`` (the showcase with a 1 KiB body limit and a 0.5 s
body read timeout, plus a 304 HTML resource and a pid/request-id endpoint),
except where a test starts its own server:

1. gevent worker, client sockets with fd >= 1024: a ``@cancellable`` handler
   answers 200 (the old ``select()`` check raised for such descriptors and
   the failure read as "client gone": an immediate 499), and a client that
   leaves is still noticed.
2. A 413 or 408 that ends the connection says ``Connection: close`` (gunicorn
   sync, gthread, gevent), and the connection is then closed.
3. Dev server: a chunked upload past the limit is cut off (413 long before
   the client sent it all); two ``Content-Length`` headers are a 400 on every
   server.
4. 204 and 304 responses carry no body on every server: nothing follows the
   header block, and on keep-alive connections the next response parses.
5. Request ids are ``GET-<worker tag>-<n>`` and unique across the two workers of one
   gunicorn server (read from the access log written via ``gunicorn.conf.py``).
6. ``gunicorn.conf.py``: a user-supplied ``PROMETHEUS_MULTIPROC_DIR`` that is
   missing or not a directory stops startup naming it; one it did not create
   is never wiped.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import http.client
import json
import os
import re
import resource
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ._pipeline_app import MAX_BODY
from .helpers import KEEPALIVE_KINDS, demo_stats, request_bytes, split_head, wait_closed, wait_for_stat
from .servers import (
    HOST,
    PROJECT_ROOT,
    HeaderList,
    Server,
    free_port,
    gunicorn_server,
    http_get,
    metrics_get,
    open_connection,
    open_fds,
    read_response,
)

pytestmark = pytest.mark.integration

Measure = Callable[[str, float, str], None]

APP = "tests.integration._pipeline_app:app"
GUNICORN_CONF = PROJECT_ROOT / "gunicorn.conf.py"
MiB = 1024 * 1024


@pytest.fixture(scope="module")
def server_app() -> str:
    return APP


@pytest.fixture(
    scope="module",
    params=("gunicorn_sync", "gunicorn_gthread", "gunicorn_gevent", "gunicorn_pywsgi"),
    ids=("gunicorn-sync", "gunicorn-gthread", "gunicorn-gevent", "gunicorn-pywsgi"),
)
def gunicorn_any(request: pytest.FixtureRequest) -> Server:
    """Each gunicorn worker type in turn (the conftest's module-scoped servers)."""
    server: Server = request.getfixturevalue(request.param)
    return server


def _connection_header(headers: HeaderList) -> str:
    return (headers.get("Connection") or "").lower()


def _readable(sock: socket.socket) -> bool:
    """``poll()``, not ``select()``: this process may hold descriptors >= 1024."""
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN | select.POLLPRI | select.POLLHUP | select.POLLERR)
    return bool(poller.poll(0))


# --------------------------------------------------------------------------
# 1. gevent worker, client descriptors >= 1024
# --------------------------------------------------------------------------

IDLE_CONNECTIONS = 1100
NOFILE_WANTED = 4096


@contextlib.contextmanager
def _raised_nofile(wanted: int) -> Iterator[int]:
    """Raise this process' soft RLIMIT_NOFILE (servers started meanwhile inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    limit = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if limit < IDLE_CONNECTIONS + 200:
        pytest.fail(
            f"RLIMIT_NOFILE hard limit {hard} is too low for {IDLE_CONNECTIONS} connections; "
            f"raise it (ulimit -Hn) where this suite runs",
            pytrace=False,
        )
    if soft != resource.RLIM_INFINITY and soft < limit:
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
    try:
        yield limit
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def _soft_nofile_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            value = line.split()[3]
            return 1 << 62 if value == "unlimited" else int(value)
    raise AssertionError(f"no 'Max open files' in /proc/{pid}/limits")


def _wait_worker_fds(pid: int, at_least: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while True:
        count = len(open_fds(pid))
        if count >= at_least or time.monotonic() >= deadline:
            return count
        time.sleep(0.05)


def _timed_get(server: Server, path: str, timeout: float) -> tuple[int, bytes, float]:
    started = time.monotonic()
    conn = http.client.HTTPConnection(server.host, server.port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read(), time.monotonic() - started
    finally:
        conn.close()


@pytest.mark.parametrize("worker_class", ["gevent", "pywsgi"])
def test_gevent_cancellable_with_client_fds_over_1024(worker_class: str, measure: Measure) -> None:
    idle: list[socket.socket] = []
    with (
        _raised_nofile(NOFILE_WANTED) as limit,
        gunicorn_server(
            "wsgi:app",
            worker_class,
            extra_args=["--worker-connections", str(IDLE_CONNECTIONS + 500), "--keep-alive", "30"],
            log_level="info",
        ) as server,
    ):
        try:
            (worker,) = server.worker_pids()
            assert _soft_nofile_of(worker) >= limit, "the gevent worker did not inherit the raised limit"
            # Idle connections that never send a request: each holds one
            # descriptor in the worker, so later clients get fds >= 1024.
            for _ in range(IDLE_CONNECTIONS):
                idle.append(socket.create_connection((server.host, server.port), timeout=5))
            held = _wait_worker_fds(worker, IDLE_CONNECTIONS, timeout=10)
            assert held >= IDLE_CONNECTIONS, f"worker holds only {held} fds"

            # Fresh clients of a @cancellable handler, while the idle ones stay.
            high_fds: list[int] = []
            stop = threading.Event()

            def watch_fds() -> None:
                while not stop.is_set():
                    with contextlib.suppress(OSError):
                        high_fds.append(max(open_fds(worker)))
                    time.sleep(0.1)

            watcher = threading.Thread(target=watch_fds, daemon=True)
            watcher.start()
            try:
                with concurrent.futures.ThreadPoolExecutor(max_workers=5) as pool:
                    results = list(
                        pool.map(lambda _: _timed_get(server, "/_demo/slow?seconds=1", 10), range(5))
                    )
            finally:
                stop.set()
                watcher.join(2)
            for status, body, elapsed in results:
                # A 499 at once: a failed disconnect check was read as "client gone".
                assert status == 200, f"{status} after {elapsed:.2f}s: {body!r}"
                assert json.loads(body) == {"slept": 1.0}
                assert elapsed >= 0.9, elapsed
            assert max(high_fds) >= 1024, f"worker fds stayed below 1024 (max {max(high_fds)})"
            measure("worker fds while slow requests ran", max(high_fds), "fd")
            measure("slow?seconds=1 median with fds >= 1024", sorted(r[2] for r in results)[2] * 1000, "ms")

            # A client that leaves mid-request is still noticed at such descriptors.
            baseline = demo_stats(server)["cancelled"]
            sock = open_connection(server)
            sock.sendall(request_bytes("GET", "/_demo/slow?seconds=10"))
            time.sleep(0.3)
            fds_during = max(open_fds(worker))
            sock.close()
            left = time.monotonic()
            _, took = wait_for_stat(server, "cancelled", baseline, since=left, timeout=3)
            assert fds_during >= 1024, fds_during
            measure("cancelled after client left (fd >= 1024)", took * 1000, "ms")
        finally:
            for conn in idle:
                conn.close()


# --------------------------------------------------------------------------
# 2. 413 / 408 say Connection: close, then close
# --------------------------------------------------------------------------


def _echo_request(length: int, body: bytes = b"") -> bytes:
    return request_bytes(
        "POST", "/_demo/echo", {"Content-Type": "application/json", "Content-Length": str(length)}, body
    )


def test_413_says_connection_close_and_closes(gunicorn_any: Server) -> None:
    server = gunicorn_any
    keepalive = server.kind in KEEPALIVE_KINDS
    with open_connection(server, timeout=5) as sock:
        fp = sock.makefile("rb")
        if keepalive:
            # First a request after which the connection stays open...
            sock.sendall(_echo_request(2, b"{}"))
            ok = read_response(fp)
            assert ok.status == 200, ok
            assert _connection_header(ok.headers) != "close", ok.headers
        # ...then (on the same connection where it stays open) a declared body over the limit.
        sock.sendall(_echo_request(4 * MAX_BODY))
        resp = read_response(fp, max_body=64 * 1024)
        fp.close()
        closed, extra = wait_closed(sock, 2.0)
    assert resp.status == 413, resp
    assert json.loads(resp.body)["errcode"] == "M_TOO_LARGE"
    assert _connection_header(resp.headers) == "close", (
        f"{server.name}: 413 said Connection: {resp.headers.get('Connection')!r}"
    )
    assert closed, f"{server.name} kept the connection open after the 413"
    assert extra == b""


def test_408_says_connection_close_and_closes(gunicorn_any: Server, measure: Measure) -> None:
    server = gunicorn_any
    with open_connection(server, timeout=5) as sock:
        started = time.monotonic()
        sock.sendall(_echo_request(100, b'{"a": '))  # the rest never comes
        fp = sock.makefile("rb")
        resp = read_response(fp, max_body=64 * 1024)
        elapsed = time.monotonic() - started
        fp.close()
        closed, extra = wait_closed(sock, 2.0)
    measure("408 after", elapsed * 1000, "ms")
    assert resp.status == 408, resp
    assert _connection_header(resp.headers) == "close", (
        f"{server.name}: 408 said Connection: {resp.headers.get('Connection')!r}"
    )
    assert closed, f"{server.name} kept the connection open after the 408"
    assert extra == b""
    assert elapsed < 3, elapsed


# --------------------------------------------------------------------------
# 3. Dev server: chunked upload cut off at the limit; duplicate Content-Length
# --------------------------------------------------------------------------

UPLOAD_TOTAL = 64 * MiB


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


@pytest.mark.parametrize(
    ("path", "status", "errcode"),
    [("/_demo/echo", 413, "M_TOO_LARGE"), ("/_demo/nothing-serves-this", 404, "M_UNRECOGNIZED")],
    ids=("handler-reads", "unknown-path"),
)
def test_dev_server_cuts_chunked_upload_at_limit(
    werkzeug_dev: Server, measure: Measure, path: str, status: int, errcode: str
) -> None:
    """413 (or the 404 of a path nothing serves), and the server stops taking the
    upload (no drain after the response), as Synapse drops the connection.

    The client keeps sending after the response arrives, as a client that does
    not watch for early responses would; what it manages to send before the
    server ends the connection is what the server (or the kernel buffers
    between) took. Werkzeug used to drain the whole body after answering.
    """
    piece = _chunk(b"z" * (64 * 1024))
    sent = 0
    resp = None
    answered_at = None
    with open_connection(werkzeug_dev, timeout=5) as sock:
        fp = sock.makefile("rb")
        started = time.monotonic()
        sock.sendall(
            request_bytes(
                "POST",
                path,
                {"Content-Type": "application/json", "Transfer-Encoding": "chunked"},
                _chunk(b'{"pad": "'),
            )
        )
        try:
            while sent < UPLOAD_TOTAL:
                if resp is None and _readable(sock):
                    resp = read_response(fp, max_body=64 * 1024)
                    answered_at = sent
                sock.sendall(piece)
                sent += len(piece)
            sock.sendall(_chunk(b'"}') + b"0\r\n\r\n")
        except (TimeoutError, BrokenPipeError, ConnectionResetError):
            pass  # the server stopped reading, or closed the connection
        if resp is None:
            sock.settimeout(5)
            try:
                resp = read_response(fp, max_body=64 * 1024)
            except (ConnectionResetError, EOFError) as exc:
                pytest.fail(f"no response after {sent / MiB:.1f} MiB sent: {exc!r}")
            answered_at = sent
        fp.close()
        elapsed = time.monotonic() - started
    assert answered_at is not None
    measure(f"chunked upload to {path} sent before {status} (dev server)", answered_at / MiB, "MiB")
    measure(f"chunked upload to {path} sent before the end (dev server)", sent / MiB, "MiB")
    measure(f"chunked upload to {path} cut off after", elapsed * 1000, "ms")
    assert resp.status == status, (resp.status, resp.body[:200])
    assert json.loads(resp.body)["errcode"] == errcode
    assert sent < UPLOAD_TOTAL // 4, (
        f"the dev server took {sent / MiB:.1f} MiB of a {UPLOAD_TOTAL // MiB} MiB upload "
        f"with a {MAX_BODY}-byte limit ({answered_at / MiB:.1f} MiB before its {status})"
    )


@pytest.mark.parametrize("values", [("2", "3"), ("2", "2")], ids=("differing", "identical"))
def test_two_content_length_headers_are_400(any_server: Server, values: tuple[str, str]) -> None:
    head = (
        f"POST /_demo/echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {values[0]}\r\nContent-Length: {values[1]}\r\n\r\n"
    ).encode()
    with open_connection(any_server, timeout=5) as sock:
        sock.sendall(head + b"{}x")
        resp = read_response(sock, max_body=64 * 1024)
    assert resp.status == 400, (any_server.name, resp.status, resp.body[:200])


# --------------------------------------------------------------------------
# 4. 204 and 304 carry no body
# --------------------------------------------------------------------------


def _read_head(sock: socket.socket, timeout: float = 5.0) -> tuple[bytes, bytes]:
    """Bytes up to the end of the header block, and whatever came with them."""
    deadline = time.monotonic() + timeout
    data = b""
    while b"\r\n\r\n" not in data:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"no end of headers within {timeout}s: {data[:300]!r}"
        sock.settimeout(remaining)
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before the end of headers: {data[:300]!r}"
        data += chunk
    return split_head(data)


def _after_head(sock: socket.socket, rest: bytes, keepalive: bool) -> bytes:
    """Everything the server sends after the header block (until close, or 0.3 s of quiet)."""
    if keepalive:
        sock.settimeout(0.3)
        with contextlib.suppress(TimeoutError):
            while chunk := sock.recv(65536):
                rest += chunk
        return rest
    closed, more = wait_closed(sock, 5.0)
    assert closed, "a closing server left the connection open"
    return rest + more


def _static_etag(server: Server) -> str:
    status, headers, _ = http_get(server, "/_matrix/static/")
    assert status == 200
    etag = headers.get("ETag")
    assert etag, headers
    return etag


def _bodiless_requests(server: Server) -> list[tuple[str, bytes, int]]:
    etag = _static_etag(server)
    return [
        (
            "OPTIONS preflight",
            request_bytes(
                "OPTIONS",
                "/_matrix/client/versions",
                {"Origin": "https://client.example", "Access-Control-Request-Method": "GET"},
            ),
            204,
        ),
        ("static If-None-Match", request_bytes("GET", "/_matrix/static/", {"If-None-Match": etag}), 304),
        ("RedirectException(url, 304)", request_bytes("GET", "/_pipeline/not-modified"), 304),
    ]


def test_204_and_304_have_no_body(any_server: Server) -> None:
    keepalive = any_server.kind in KEEPALIVE_KINDS
    for name, request, expected in _bodiless_requests(any_server):
        with open_connection(any_server, timeout=5) as sock:
            sock.sendall(request)
            head, rest = _read_head(sock)
            status_line = head.split(b"\r\n", 1)[0]
            assert status_line.split(b" ")[1] == str(expected).encode(), (name, head)
            extra = _after_head(sock, rest, keepalive)
            assert extra == b"", (
                f"{any_server.name}, {name}: {len(extra)} bytes after the {expected} head: {extra[:200]!r}"
            )
            if keepalive:
                assert b"connection: close" not in head.lower(), (name, head)
                sock.sendall(request_bytes("GET", "/_matrix/client/versions"))
                sock.settimeout(5)
                following = read_response(sock)
                assert following.status == 200, (name, following)
                assert "versions" in json.loads(following.body), (name, following.body[:200])


# --------------------------------------------------------------------------
# 5. Request ids unique across workers
# --------------------------------------------------------------------------

REQUESTS = 200
_ACCESS_ID = re.compile(r" - synwsgi\.access - \d+ - INFO - (\S+) - .*\"GET /_pipeline/whoami HTTP/1\.1\"")


def test_request_ids_unique_across_workers(measure: Measure) -> None:
    with gunicorn_server(APP, "sync", workers=2, config=GUNICORN_CONF, log_level="info") as server:
        workers = set(server.worker_pids())
        assert len(workers) == 2
        mark = server.log_mark()

        def whoami(_index: int) -> tuple[int, str]:
            status, _headers, body = http_get(server, "/_pipeline/whoami", {"Connection": "close"})
            assert status == 200, body
            answer = json.loads(body)
            return answer["pid"], answer["request_id"]

        # The kernel, not gunicorn, decides which worker accepts: send in
        # rounds until both have served (bounded), then count every request.
        answers: list[tuple[int, str]] = []
        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
            for _round in range(10):
                answers += pool.map(whoami, range(REQUESTS))
                if {pid for pid, _ in answers} == workers:
                    break
        deadline = time.monotonic() + 10
        while True:
            logged = _ACCESS_ID.findall(server.log(mark))
            if len(logged) >= len(answers) or time.monotonic() >= deadline:
                break
            time.sleep(0.05)
    pids = {pid for pid, _ in answers}
    assert pids == workers, f"served by {pids}, workers {workers}"
    for pid in pids:
        measure(
            f"requests served by worker {sorted(pids).index(pid)}", sum(p == pid for p, _ in answers), "req"
        )
    ids = [request_id for _, request_id in answers]
    assert all(re.fullmatch(r"GET-[a-z2-7]{5}-\d+", request_id) for request_id in ids), ids[:5]
    assert len(set(ids)) == len(ids), f"{len(ids) - len(set(ids))} duplicate ids"
    assert len(logged) == len(ids), f"{len(logged)} access lines, {len(ids)} requests:\n{server.log_tail()}"
    assert len(set(logged)) == len(logged), "duplicate request ids in the access log"
    assert set(logged) == set(ids)


# --------------------------------------------------------------------------
# 6. gunicorn.conf.py and a user-supplied PROMETHEUS_MULTIPROC_DIR
# --------------------------------------------------------------------------


def _run_gunicorn_conf(env_dir: str, timeout: float = 20.0) -> tuple[int | None, str]:
    """Start ``gunicorn -c gunicorn.conf.py wsgi:app``; (exit code or None if still up, output)."""
    env = dict(os.environ)
    env.pop("GUNICORN_CMD_ARGS", None)
    env["PROMETHEUS_MULTIPROC_DIR"] = env_dir
    argv = [
        sys.executable,
        "-m",
        "gunicorn",
        "--config",
        os.fspath(GUNICORN_CONF),
        "--bind",
        f"{HOST}:{free_port()}",
        "--worker-class",
        "sync",
        "--workers",
        "1",
        "--no-control-socket",
        "wsgi:app",
    ]
    proc = subprocess.Popen(
        argv,
        cwd=PROJECT_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
        return proc.returncode, out.decode("utf-8", "replace")
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate(timeout=5)
        return None, out.decode("utf-8", "replace")


def test_prometheus_dir_missing_stops_startup(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-metrics-dir"
    code, output = _run_gunicorn_conf(os.fspath(missing))
    assert code is not None, f"gunicorn kept running with a missing metrics directory:\n{output[-2000:]}"
    assert code != 0, output[-2000:]
    assert os.fspath(missing) in output, f"the message does not name the directory:\n{output[-2000:]}"
    assert "PROMETHEUS_MULTIPROC_DIR" in output, f"the message does not name the variable:\n{output[-2000:]}"


def test_prometheus_dir_not_a_directory_stops_startup(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "metrics-file"
    not_a_dir.write_text("not a directory\n")
    code, output = _run_gunicorn_conf(os.fspath(not_a_dir))
    assert code is not None, f"gunicorn kept running with a file as metrics directory:\n{output[-2000:]}"
    assert code != 0, output[-2000:]
    assert os.fspath(not_a_dir) in output, f"the message does not name the directory:\n{output[-2000:]}"
    assert "PROMETHEUS_MULTIPROC_DIR" in output, f"the message does not name the variable:\n{output[-2000:]}"
    assert "not a directory" in output, f"the message does not say what is wrong:\n{output[-2000:]}"
    assert not_a_dir.read_text() == "not a directory\n"


def test_user_prometheus_dir_is_never_wiped(tmp_path: Path) -> None:
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    sentinel = metrics_dir / "keep-me.txt"
    sentinel.write_text("the operator's file\n")
    with gunicorn_server(
        "wsgi:app",
        "sync",
        config=GUNICORN_CONF,
        env={"PROMETHEUS_MULTIPROC_DIR": os.fspath(metrics_dir)},
        log_level="info",
    ) as server:
        assert sentinel.exists(), "startup wiped a metrics directory the config did not create"
        assert http_get(server, "/_matrix/client/versions")[0] == 200
        status, body = metrics_get(server)
        assert status == 200, body[:500]
        deadline = time.monotonic() + 5  # the worker writes its batch within 0.25 s
        while not any(path.suffix == ".db" for path in metrics_dir.iterdir()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert any(path.suffix == ".db" for path in metrics_dir.iterdir()), list(metrics_dir.iterdir())
    assert not server.running()
    assert sentinel.read_text() == "the operator's file\n", "exit wiped the user's metrics directory"
    assert any(path.suffix == ".db" for path in metrics_dir.iterdir()), "exit removed the samples"
