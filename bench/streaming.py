"""Group e: throughput of a large generator response through gunicorn."""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from bench.candidates import SYNWSGI
from bench.model import Failure, Group, Target, guarded, row_from_runs
from bench.peers.common import STREAM_PATH
from bench.servers import HOST, ServerPool
from bench.timing import rotate_rounds

WORKER_CLASSES = ("sync", "gevent")
BASELINE = "raw 64KiB"
RECV_BUFFER = 1 << 20
SOCKET_TIMEOUT_S = 30.0
TRANSFER_DEADLINE_S = 120.0
HEADER_END = b"\r\n\r\n"


@dataclass(frozen=True)
class StreamCase:
    name: str
    server: str  # which candidate's server serves it
    query: str  # query string; ``{n}`` is replaced by the byte count


CASES = (
    StreamCase(BASELINE, "raw", "bytes={n}&chunk=65536"),
    StreamCase(SYNWSGI, SYNWSGI, "bytes={n}"),
    StreamCase("raw 4KiB", "raw", "bytes={n}&chunk=4096"),
)
NAMES = tuple(c.name for c in CASES)


class TransferError(Exception):
    pass


def _read_head(sock: socket.socket) -> tuple[bytes, int]:
    """(status line, body bytes already read past the header block)."""
    head = b""
    while HEADER_END not in head:
        data = sock.recv(4096)
        if not data:
            raise TransferError("connection closed inside headers")
        head += data
    headers, _, rest = head.partition(HEADER_END)
    return headers.split(b"\r\n", 1)[0], len(rest)


def fetch_discard(port: int, target: str) -> int:
    """GET ``target`` with ``Connection: close``; count and discard everything
    after the headers (chunked framing included); return that count."""
    request = (f"GET {target} HTTP/1.1\r\nHost: {HOST}:{port}\r\nConnection: close\r\n\r\n").encode("ascii")
    deadline = time.monotonic() + TRANSFER_DEADLINE_S
    with socket.create_connection((HOST, port), timeout=SOCKET_TIMEOUT_S) as sock:
        sock.sendall(request)
        status, received = _read_head(sock)
        if b" 200 " not in status + b" ":
            raise TransferError(f"status line {status!r}")
        buffer = bytearray(RECV_BUFFER)
        while (count := sock.recv_into(buffer)) > 0:
            received += count
            if time.monotonic() > deadline:
                raise TransferError(f"transfer exceeded {TRANSFER_DEADLINE_S:.0f}s")
    return received


def mib_per_s(port: int, target: str, total: int) -> float:
    start = time.perf_counter_ns()
    received = fetch_discard(port, target)
    elapsed_s = (time.perf_counter_ns() - start) / 1e9
    if received < total:
        raise TransferError(f"short body: {received} < {total} bytes")
    return total / elapsed_s / 2**20


def _stream_target(case: StreamCase, total: int) -> str:
    return f"{STREAM_PATH}?{case.query.format(n=total)}"


def _measure_class(worker_class: str, total: int, reps: int, log_dir: Path) -> Group:
    group = Group(
        f"stream-{worker_class}",
        f"Streaming {total / 2**20:.0f} MiB from a generator, gunicorn {worker_class}",
        "MiB/s",
        baseline=BASELINE,
        higher_is_better=True,
        targets={SYNWSGI: Target(">=", 0.9, ">=0.9x raw", BASELINE)},
        note="raw socket client, HTTP/1.1 Connection: close, data discarded",
    )
    with ServerPool(worker_class, log_dir) as pool:
        for server in dict.fromkeys(c.server for c in CASES):
            pool.start(server, _stream_target(CASES[0], 16), None)
        cases = {c.name: c for c in CASES if c.server in pool.servers}

        def one(name: str) -> float | Failure:
            case = cases[name]
            port = pool.servers[case.server].port
            run = partial(mib_per_s, port, _stream_target(case, total), total)
            return guarded(run, (OSError, TransferError))

        runs = rotate_rounds(list(cases), one, reps, budget_s=reps * TRANSFER_DEADLINE_S)
        group.rows += [row_from_runs(n, r, float) for n, r in runs.items()]
        group.rows += pool.problem_rows()
    group.order(NAMES)
    return group


def run_streaming(total: int, reps: int, log_dir: Path) -> list[Group]:
    return [_measure_class(wc, total, reps, log_dir) for wc in WORKER_CLASSES]
