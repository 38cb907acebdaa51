"""Disconnects: N clients leave in the middle of a streamed body.

Each client asks for `/_demo/stream?bytes=1 GiB` (a generator body), reads
the first 64 KiB, stalls 50-250 ms (the server's writes block on a full
socket buffer meanwhile) and goes away, half of them with a FIN (close),
half with a RST (SO_LINGER 0), `--parallel` at a time. Meanwhile a probe keeps timing a
normal request. Passes when `/_demo/stats` counts exactly N more
`streams_closed` (every iterator's `close()` ran, so its `finally` did), the
same worker served throughout, its fds and greenlets came back to their
baseline, and a normal request's latency during and after the disconnects
stays within its usual range (during the disconnects: the gevent workers only, since a
gthread worker's threads are held by stalled readers until they leave).

    python -m stress.disconnects               # 1 000 clients per worker class
    python -m stress.disconnects --short       # 100 (CI)
"""

from __future__ import annotations

import argparse
import json
import socket
import struct
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

if __package__ in (None, ""):
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))

from stress._common import Client, Server, Verdict, http_get, introspect, percentiles, say, server, worker_pid

STREAM_TARGET = "/_demo/stream?bytes=1073741824"
READ_BEFORE_LEAVING = 64 * 1024


def stats(running: Server) -> dict[str, int]:
    status, _, body = http_get(running, "/_demo/stats")
    assert status == 200, (status, body)
    result: dict[str, int] = json.loads(body)
    return result


def latencies(running: Server, count: int) -> list[float]:
    client = Client(running.host, running.port)
    samples = []
    try:
        for _ in range(count):
            started = time.perf_counter()
            reply = client.request("GET", "/_matrix/client/versions")
            samples.append(time.perf_counter() - started)
            if reply.status != 200:
                raise RuntimeError(f"normal request failed: {reply.status}")
    finally:
        client.close()
    return samples


def leave_mid_stream(running: Server, index: int) -> str | None:
    """One client: request the stream, read some of it, go away. Returns an error or None."""
    try:
        with socket.create_connection((running.host, running.port), timeout=20) as sock:
            sock.sendall(f"GET {STREAM_TARGET} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            received = 0
            first = b""
            while received < READ_BEFORE_LEAVING:
                data = sock.recv(65536)
                if not data:
                    return f"client {index}: closed by the server after {received} bytes"
                if not first:
                    first = data
                received += len(data)
            if not first.startswith(b"HTTP/1.1 200"):
                return f"client {index}: {first[:80]!r}"
            time.sleep(0.05 + (index * 7919 % 200) / 1000)
            if index % 2:
                # RST instead of FIN.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError as exc:
        return f"client {index}: {type(exc).__name__}: {exc}"
    return None


class Probe(threading.Thread):
    """Times a normal request every `interval` s until stopped."""

    def __init__(self, running: Server, interval: float = 0.005) -> None:
        super().__init__(daemon=True)
        self.running = running
        self.interval = interval
        self.samples: list[float] = []
        self.errors: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        client = Client(self.running.host, self.running.port, timeout=10)
        while not self.stop.wait(self.interval):
            started = time.perf_counter()
            try:
                reply = client.request("GET", "/_matrix/client/versions")
                if reply.status != 200:
                    self.errors.append(f"status {reply.status}")
            except Exception as exc:  # noqa: BLE001 - recorded
                self.errors.append(f"{type(exc).__name__}: {exc}")
                client.close()
                continue
            self.samples.append(time.perf_counter() - started)
        client.close()


def run(kind: str, clients: int, parallel: int, verdict: Verdict) -> None:
    say(f"== {kind}: {clients} clients leave mid-stream, {parallel} at a time")
    with server(kind, threads=8) as running:
        pid = worker_pid(running)
        latencies(running, 200)  # warm up
        before = percentiles(latencies(running, 300))
        base_stats = stats(running)
        base_worker = introspect(running)
        probe = Probe(running)
        probe.start()
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=parallel) as pool:
            errors = [e for e in pool.map(lambda i: leave_mid_stream(running, i), range(clients)) if e]
        left_in = time.monotonic() - started
        # Every iterator must be closed: wait for the counter (bounded).
        deadline = time.monotonic() + 30 + clients * 0.02
        closed = stats(running)["streams_closed"] - base_stats["streams_closed"]
        while closed < clients and time.monotonic() < deadline:
            time.sleep(0.1)
            closed = stats(running)["streams_closed"] - base_stats["streams_closed"]
        settle = time.monotonic() - started - left_in
        probe.stop.set()
        probe.join(10)
        time.sleep(1.0)  # let the last sockets close
        after = percentiles(latencies(running, 300))
        final_worker = introspect(running)
        still = running.worker_pids()
    during = percentiles(probe.samples)
    figures = {
        "clients": clients,
        "client_errors": len(errors),
        "streams_closed": closed,
        "seconds_to_disconnect_all": round(left_in, 2),
        "seconds_until_all_closed": round(settle, 2),
        "latency_before_ms": before,
        "latency_during_ms": during,
        "latency_after_ms": after,
        "fds": [base_worker["fds"], final_worker["fds"]],
        "greenlets": [base_worker["greenlets"], final_worker["greenlets"]],
        "threads": [base_worker["threads"], final_worker["threads"]],
        "rss_kib": [base_worker["rss_kib"], final_worker["rss_kib"]],
    }
    verdict.figure(kind, figures)
    say(f"  figures: {json.dumps(figures)}")
    for error in errors[:5]:
        say(f"  client error: {error}")
    verdict.check(not errors, f"{kind}: every client got its first 64 KiB ({len(errors)} errors)")
    verdict.check(closed == clients, f"{kind}: streams_closed +{closed} == {clients}")
    verdict.check(still == [pid], f"{kind}: the same worker served throughout ({pid} -> {still})")
    verdict.check(
        not probe.errors, f"{kind}: normal requests during the disconnects all answered ({probe.errors[:3]})"
    )
    usual = max(3 * before["p99"], before["p99"] + 20.0)
    verdict.check(
        after["p99"] <= usual,
        f"{kind}: p99 after {after['p99']} ms <= {usual:.1f} ms (before {before['p99']})",
    )
    if kind in ("gevent", "pywsgi"):
        verdict.check(during["p99"] <= max(250.0, usual), f"{kind}: p99 during {during['p99']} ms <= 250 ms")
    else:
        # A thread writing to a client that stalls is held until the client leaves:
        # with more stalled streams than threads, a normal request waits its turn.
        say(f"  info {kind}: p99 during {during['p99']} ms (threads held by stalled readers; not checked)")
    verdict.check(final_worker["fds"] <= base_worker["fds"] + 2, f"{kind}: fds {figures['fds']}")
    verdict.check(
        final_worker["greenlets"] <= base_worker["greenlets"] + 2, f"{kind}: greenlets {figures['greenlets']}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=1000, help="clients per worker class")
    parser.add_argument("--short", action="store_true", help="100 clients per worker class (CI)")
    parser.add_argument("--parallel", type=int, default=50, help="clients at a time")
    parser.add_argument("--workers", default="pywsgi,gevent,gthread", help="comma-separated worker classes")
    args = parser.parse_args(argv)
    clients = 100 if args.short else args.clients
    verdict = Verdict("disconnects")
    for kind in args.workers.split(","):
        run(kind.strip(), clients, args.parallel, verdict)
    return verdict.finish()


if __name__ == "__main__":
    sys.exit(main())
