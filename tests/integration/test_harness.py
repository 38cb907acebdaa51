"""Tests of the integration harness itself, against the dependency-free sample app.

They also pin down server behaviour the toolkit's design depends on:

(a) a ``BrokenPipeError`` raised by the response iterator after the first
    chunk makes every server close the connection without the terminating
    ``0\\r\\n\\r\\n``, without an ERROR/traceback in the log, *provided the
    exception carries ``errno.EPIPE``* (gunicorn checks ``e.errno``; an
    errno-less ``BrokenPipeError()`` is logged by gunicorn as
    "[ERROR] Socket error processing request." with a traceback);
(b) when the client goes away mid-stream, the server calls the iterator's
    ``close()`` (so a generator's ``finally`` runs) within a few seconds.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager

import pytest

from .servers import (
    PROJECT_ROOT,
    SAMPLE_APP,
    Server,
    ServerStartError,
    dev_server,
    group_members,
    gunicorn_server,
    http_get,
    http_request,
    open_connection,
    open_fds,
    pid_alive,
    raw_request,
    read_response,
    worker_rss_kib,
)

pytestmark = pytest.mark.integration

#: Lines that must not appear when a disconnect is handled quietly.
NOISE = re.compile(r"Traceback|\[ERROR\]|Error on request|Exception", re.IGNORECASE)
#: gunicorn's debug line for an EPIPE (sync/gevent: "Ignoring EPIPE",
#: gthread: "Ignoring connection epipe").
EPIPE_DEBUG = re.compile(r"\[DEBUG\] Ignoring (connection )?epipe", re.IGNORECASE)


@pytest.fixture(scope="module")
def server_app() -> str:
    return SAMPLE_APP


def _token() -> str:
    return uuid.uuid4().hex[:12]


def _get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()


# --------------------------------------------------------------------------
# Basic behaviour
# --------------------------------------------------------------------------


def test_status(any_server: Server) -> None:
    status, headers, body = http_get(any_server, "/")
    assert (status, body) == (200, b"ok")
    assert headers.get("content-length") == "2"


def test_not_found(any_server: Server) -> None:
    status, _, body = http_get(any_server, "/nope")
    assert (status, body) == (404, b"not found")


def test_chunked_stream(any_server: Server) -> None:
    with open_connection(any_server) as sock:
        sock.sendall(_get("/stream?n=5"))
        resp = read_response(sock)
    assert resp.status == 200
    assert resp.headers.get("Transfer-Encoding") == "chunked"
    assert resp.complete is True
    assert resp.body == b"".join(f"chunk {i}\n".encode() for i in range(5))


def test_head(any_server: Server) -> None:
    status, headers, body = http_request(any_server, "HEAD", "/")
    assert (status, body) == (200, b"")
    assert headers.get("Content-Length") == "2"
    with open_connection(any_server) as sock:
        sock.sendall(b"HEAD / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        resp = read_response(sock, head=True)
    assert (resp.status, resp.body, resp.complete) == (200, b"", True)


def test_head_body_from_app(any_server: Server) -> None:
    """Recorded fact: gunicorn drops a body the app returns for HEAD; the
    werkzeug dev server and gevent.pywsgi (the ``pywsgi`` worker) write it
    onto the wire (so the toolkit must strip)."""
    data = raw_request(
        any_server,
        b"HEAD /head-body HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    )
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert b"Content-Length: 9" in head
    if any_server.is_gunicorn and any_server.kind != "pywsgi":
        assert rest == b""
    else:
        assert rest == b"head-body"


def test_slow(any_server: Server) -> None:
    start = time.monotonic()
    status, _, body = http_get(any_server, "/slow")
    assert (status, body) == (200, b"slow")
    assert time.monotonic() - start >= 0.45


def test_proc_helpers(any_server: Server) -> None:
    workers = any_server.worker_pids()
    assert workers, "no worker pids"
    for pid in workers:
        assert pid_alive(pid)
        assert worker_rss_kib(pid) > 1024
        fds = open_fds(pid)
        assert any(target.startswith("socket:") for target in fds.values()), fds
    if any_server.is_gunicorn:
        assert any_server.pid not in workers
    else:
        assert workers == [any_server.pid]


# --------------------------------------------------------------------------
# Fact (a): BrokenPipeError from the response iterator
# --------------------------------------------------------------------------


def _broken_request(server: Server, bare: bool) -> tuple[bytes, float, str]:
    """GET /broken; return (wire bytes, seconds until close, log since)."""
    token = _token()
    mark = server.log_mark()
    start = time.monotonic()
    data = raw_request(server, _get(f"/broken?token={token}&bare={int(bare)}"), timeout=5)
    elapsed = time.monotonic() - start
    server.wait_for_log(f"SAMPLE-BROKEN-FINALLY token={token}", since=mark)
    if server.kind == "pywsgi":
        time.sleep(0.3)  # gevent.pywsgi would log right after the finally
    elif server.is_gunicorn:
        # gunicorn's handler logs after the app's finally; wait for its verdict.
        verdict = re.compile(rf"{EPIPE_DEBUG.pattern}|Socket error processing", re.IGNORECASE)
        server.wait_for_log(verdict, since=mark)
    else:
        time.sleep(0.3)  # werkzeug would log an error right after the finally
    return data, elapsed, server.log(since=mark)


def _assert_cut_short(data: bytes, elapsed: float) -> None:
    assert b"first chunk\n" in data
    assert b"Transfer-Encoding: chunked" in data
    assert not data.endswith(b"0\r\n\r\n"), data[-40:]
    assert elapsed < 4.0, f"server kept the connection open for {elapsed:.1f}s"


def test_fact_a_broken_pipe_closes_quietly(any_server: Server) -> None:
    data, elapsed, log = _broken_request(any_server, bare=False)
    _assert_cut_short(data, elapsed)
    assert not NOISE.search(log), log
    if any_server.is_gunicorn and any_server.kind != "pywsgi":
        assert EPIPE_DEBUG.search(log), log  # gevent.pywsgi ignores an EPIPE without a word


def test_fact_a_errnoless_broken_pipe(any_server: Server) -> None:
    """Recorded fact: ``BrokenPipeError()`` without errno is *not* quiet on gunicorn
    (gevent.pywsgi fails on it with an IndexError, reading ``args[0]``)."""
    data, elapsed, log = _broken_request(any_server, bare=True)
    _assert_cut_short(data, elapsed)
    if any_server.kind == "pywsgi":
        assert "IndexError" in log, log
    elif any_server.is_gunicorn:
        assert "[ERROR] Socket error processing request." in log, log
        assert "Traceback" in log
    else:
        assert not NOISE.search(log), log


# --------------------------------------------------------------------------
# Fact (b): client disconnect mid-stream -> iterator close()
# --------------------------------------------------------------------------


def _disconnect_mid_stream(server: Server, path: str, marker: str) -> None:
    token = _token()
    mark = server.log_mark()
    with open_connection(server) as sock:
        sock.sendall(_get(f"{path}?token={token}"))
        received = 0
        while received < 512 * 1024:
            chunk = sock.recv(65536)
            assert chunk, "server closed the 1 GiB stream early"
            received += len(chunk)
    start = time.monotonic()
    line = server.wait_for_log(f"{marker} token={token}", since=mark, timeout=5)
    assert time.monotonic() - start < 5
    assert "pid=" in line
    assert not NOISE.search(server.log(since=mark)), server.log(since=mark)


def test_fact_b_disconnect_runs_generator_finally(any_server: Server) -> None:
    _disconnect_mid_stream(any_server, "/long", "SAMPLE-GEN-FINALLY")


def test_fact_b_disconnect_calls_explicit_close(any_server: Server) -> None:
    # An object with close() and no finalizer: only an explicit call logs.
    _disconnect_mid_stream(any_server, "/long-closable", "SAMPLE-ITER-CLOSE")


def test_server_still_serves_after_disconnects(any_server: Server) -> None:
    assert any_server.running()
    assert http_get(any_server, "/")[0] == 200


# --------------------------------------------------------------------------
# Lifecycle
# --------------------------------------------------------------------------

KINDS = ("sync", "gthread", "gevent", "pywsgi", "werkzeug")


def _start(kind: str) -> AbstractContextManager[Server]:
    if kind == "werkzeug":
        return dev_server(SAMPLE_APP)
    return gunicorn_server(SAMPLE_APP, kind, workers=2, log_level="debug", graceful_timeout=1)


@pytest.mark.parametrize("kind", KINDS)
def test_stop_leaves_no_processes(kind: str) -> None:
    with _start(kind) as server:
        pids = [server.pid, *server.worker_pids()]
        # werkzeug: [server, server] (it is its own worker); gunicorn: master + 2
        assert len(set(pids)) == (1 if kind == "werkzeug" else 3), pids
        # A request in flight on another connection must not block the stop.
        sock = open_connection(server)
        sock.sendall(_get("/long?token=stop"))
        assert sock.recv(1024)
        started = time.monotonic()
    sock.close()
    assert time.monotonic() - started < 1 + 5  # graceful_timeout + STOP_GRACE_EXTRA
    assert [pid for pid in pids if pid_alive(pid)] == []
    assert group_members(server.pid) == []
    assert not server.running()
    assert server.log(), "log must stay readable after stop"
    if kind != "werkzeug":
        assert "Control socket disabled" in server.log()
        assert "Control socket listening" not in server.log()


def test_start_failure_reports_log_and_cleans_up() -> None:
    missing = "tests.integration._no_such_module:app"
    with (
        pytest.raises(ServerStartError, match="No module named") as info,
        gunicorn_server(missing, "sync", timeout=10),
    ):
        pass  # pragma: no cover
    assert not pid_alive(info.value.pid)
    assert group_members(info.value.pid) == []
    with (
        pytest.raises(ServerStartError, match="No module named") as info,
        dev_server(missing, timeout=10),
    ):
        pass  # pragma: no cover
    assert not pid_alive(info.value.pid)


@pytest.fixture
def cwd_config(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    workdir = tmp_path_factory.mktemp("cwdconf")
    config = workdir / "gunicorn.conf.py"
    config.write_text("def when_ready(server):\n    print('CWD-CONFIG-LOADED', flush=True)\n")
    yield str(workdir), str(config)


def test_gunicorn_config_only_when_asked(cwd_config: tuple[str, str]) -> None:
    workdir, config = cwd_config
    env = {"PYTHONPATH": str(PROJECT_ROOT)}
    with gunicorn_server(SAMPLE_APP, "sync", cwd=workdir, env=env) as server:
        assert http_get(server, "/")[0] == 200
        assert "CWD-CONFIG-LOADED" not in server.log()
    with gunicorn_server(SAMPLE_APP, "sync", cwd=workdir, env=env, config=config) as server:
        server.wait_for_log("CWD-CONFIG-LOADED")


def test_raw_request_times_out_on_idle_keepalive(gunicorn_gthread: Server) -> None:
    """raw_request returns what it got when the server keeps the socket open."""
    start = time.monotonic()
    data = raw_request(gunicorn_gthread, _get("/"), timeout=1.0)
    assert data.startswith(b"HTTP/1.1 200") and data.endswith(b"ok")
    assert 0.9 <= time.monotonic() - start < 3


def test_read_response_stops_at_max_body(gunicorn_gthread: Server) -> None:
    with open_connection(gunicorn_gthread, timeout=0.5) as sock:
        sock.sendall(_get(f"/long?token={_token()}&total=100000000000"))
        resp = read_response(sock, max_body=256 * 1024)
    assert resp.status == 200 and resp.complete is False
    assert len(resp.body) >= 256 * 1024
