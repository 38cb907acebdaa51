"""Slow clients against the gevent worker: they must not stop others, and must be cut off.

Three kinds of slow client connect to one gevent worker (gunicorn.conf.py), of
each kind in `--workers` (synwsgi's `pywsgi` worker, gunicorn's `gevent`):

* slowloris: a request head that never ends, one more header line every
  `--drip` seconds;
* slow body: a complete head for `POST /_demo/echo` with `Content-Length:
  1000`, then one body byte every `--drip` seconds;
* stalled body: the same head and 10 bytes of body, then nothing.

Meanwhile a normal client sends a request every 50 ms. Passes when every
normal request is answered (p99 within `--max-p99-ms`), the same worker
serves throughout, and every slow client is cut off by a timeout: slowloris
within gunicorn's `keepalive` (5 s in gunicorn.conf.py) + 2 s, slow and
stalled bodies within synwsgi's body deadline (`ServerConfig.body_read_timeout`
+ Content-Length / `body_min_rate`) + 3 s. Each slow client's fate (cut off
after how long, with what answer, or still connected) is printed.

    python -m stress.slow_clients              # 500 slowloris, 200 slow, 100 stalled
    python -m stress.slow_clients --short      # 50 / 20 / 10 (CI)
"""

from __future__ import annotations

import argparse
import json
import selectors
import socket
import sys
import threading
import time
from dataclasses import dataclass

if __package__ in (None, ""):
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))

from stress._common import Client, Server, Verdict, percentiles, say, server, worker_pid
from synwsgi.config import ServerConfig

KEEPALIVE = 5.0  # gunicorn.conf.py
BODY_LENGTH = 1000
_CONFIG = ServerConfig()
BODY_DEADLINE = _CONFIG.body_read_timeout + BODY_LENGTH / _CONFIG.body_min_rate


@dataclass
class Slow:
    kind: str
    sock: socket.socket
    opened: float
    cut_after: float | None = None
    answer: bytes = b""
    sent: int = 0


def _open(running: Server, kind: str) -> Slow:
    sock = socket.create_connection((running.host, running.port), timeout=5)
    sock.setblocking(False)
    slow = Slow(kind, sock, time.monotonic())
    if kind == "slowloris":
        sock.send(b"GET /_matrix/client/versions HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    else:
        head = (
            b"POST /_demo/echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % BODY_LENGTH
        )
        sock.send(head + (b'{"a":"' + b"x" * 4 if kind == "stalled" else b"{"))
    return slow


def _drip(slow: Slow) -> None:
    try:
        if slow.kind == "slowloris":
            slow.sock.send(b"X-Slow-%d: 1\r\n" % slow.sent)
        elif slow.kind == "slow-body":
            slow.sock.send(b" ")
        slow.sent += 1
    except OSError:
        slow.cut_after = slow.cut_after or time.monotonic() - slow.opened


class Normal(threading.Thread):
    def __init__(self, running: Server) -> None:
        super().__init__(daemon=True)
        self.running = running
        self.samples: list[float] = []
        self.errors: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        client = Client(self.running.host, self.running.port, timeout=10)
        while not self.stop.wait(0.05):
            started = time.perf_counter()
            try:
                reply = client.request("GET", "/_matrix/client/versions")
                if reply.status != 200:
                    self.errors.append(f"status {reply.status}")
                self.samples.append(time.perf_counter() - started)
            except Exception as exc:  # noqa: BLE001 - recorded
                self.errors.append(f"{type(exc).__name__}: {exc}")
                client.close()
        client.close()


def run(
    worker: str, counts: dict[str, int], worker_timeout: int, drip: float, max_p99_ms: float, verdict: Verdict
) -> None:
    bounds = {"slowloris": KEEPALIVE + 2, "slow-body": BODY_DEADLINE + 3, "stalled": BODY_DEADLINE + 3}
    say(f"== {worker}: slow clients {counts}, worker timeout {worker_timeout} s, bounds {bounds}")
    with server(worker, worker_timeout=worker_timeout, log_level="info") as running:
        pid = worker_pid(running)
        normal = Normal(running)
        normal.start()
        time.sleep(0.5)
        slows = [_open(running, kind) for kind, n in counts.items() for _ in range(n)]
        selector = selectors.DefaultSelector()
        for slow in slows:
            selector.register(slow.sock, selectors.EVENT_READ, slow)
        started = time.monotonic()
        next_drip = started + drip
        horizon = started + max(bounds.values()) + 1
        while time.monotonic() < horizon and any(s.cut_after is None for s in slows):
            for key, _ in selector.select(timeout=0.1):
                slow = key.data
                try:
                    data = slow.sock.recv(4096)
                except (ConnectionResetError, BrokenPipeError):
                    data = b""
                except BlockingIOError:
                    continue
                if data:
                    slow.answer += data
                if not data or slow.answer:
                    slow.cut_after = slow.cut_after or time.monotonic() - slow.opened
                    selector.unregister(slow.sock)
            if time.monotonic() >= next_drip:
                next_drip += drip
                for slow in slows:
                    if slow.cut_after is None:
                        _drip(slow)
        normal.stop.set()
        normal.join(10)
        for slow in slows:
            slow.sock.close()
        time.sleep(0.5)
        still = running.worker_pids()
    latency = percentiles(normal.samples)
    figures: dict[str, object] = {"normal_requests": len(normal.samples), "normal_latency_ms": latency}
    for kind in counts:
        group = [s for s in slows if s.kind == kind]
        cut = sorted(s.cut_after for s in group if s.cut_after is not None)
        answers = sorted(
            {
                s.answer.split(b"\r\n", 1)[0].decode("latin-1") or "<closed silently>"
                for s in group
                if s.cut_after
            }
        )
        figures[kind] = {
            "clients": len(group),
            "cut_off": len(cut),
            "never_cut_within_s": round(max(bounds.values()) + 1, 1) if len(cut) < len(group) else None,
            "cut_after_s": [round(cut[0], 2), round(cut[len(cut) // 2], 2), round(cut[-1], 2)]
            if cut
            else None,
            "answers": answers,
        }
    verdict.figure(worker, figures)
    say(f"  figures: {json.dumps(figures)}")
    verdict.check(
        not normal.errors,
        f"{worker}: normal requests all answered ({len(normal.errors)} errors: {normal.errors[:3]})",
    )
    verdict.check(
        latency["p99"] <= max_p99_ms, f"{worker}: normal p99 {latency['p99']} ms <= {max_p99_ms} ms"
    )
    verdict.check(still == [pid], f"{worker}: the same worker served throughout ({pid} -> {still})")
    for kind in counts:
        group = [s for s in slows if s.kind == kind]
        late = [s for s in group if s.cut_after is None or s.cut_after > bounds[kind]]
        verdict.check(
            not late,
            f"{worker} {kind}: all {len(group)} cut off within {bounds[kind]:.1f} s ({len(late)} were not)",
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--short", action="store_true", help="fewer clients, worker timeout 10 s (CI)")
    parser.add_argument("--slowloris", type=int, default=500)
    parser.add_argument("--slow-body", type=int, default=200)
    parser.add_argument("--stalled", type=int, default=100)
    parser.add_argument("--worker-timeout", type=int, default=30, help="gunicorn --timeout")
    parser.add_argument("--drip", type=float, default=1.0, help="seconds between a slow client's bytes")
    parser.add_argument("--max-p99-ms", type=float, default=250.0)
    parser.add_argument(
        "--workers", default="pywsgi,gevent", help="comma-separated gevent worker kinds (pywsgi: synwsgi's)"
    )
    args = parser.parse_args(argv)
    if args.short:
        counts = {"slowloris": 50, "slow-body": 20, "stalled": 10}
        worker_timeout = 10
    else:
        counts = {"slowloris": args.slowloris, "slow-body": args.slow_body, "stalled": args.stalled}
        worker_timeout = args.worker_timeout
    verdict = Verdict("slow_clients")
    for worker in args.workers.split(","):
        run(worker.strip(), counts, worker_timeout, args.drip, args.max_p99_ms, verdict)
    return verdict.finish()


if __name__ == "__main__":
    sys.exit(main())
