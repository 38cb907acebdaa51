"""Soak: N requests of mixed endpoints against real gunicorn gevent and gthread workers.

For each worker class, one worker (gunicorn.conf.py) serves `stress.app:app`
(the showcase plus `/_stress/introspect`) while `--concurrency` keep-alive
clients send a fixed mix of the showcase's endpoints: JSON reads and writes,
echo, errors (403/404/405/429/400), HEAD, OPTIONS, static files, HTML, a
redirect, streamed and large bodies, @cancellable handlers, and /metrics,
which the public port must refuse (404: metrics have a listener of their own).

Measured after a warm-up (baseline) and at ten checkpoints: worker RSS, open
file descriptors, OS threads, live greenlets (after a `gc.collect()` in the
worker). Passes when there is no error (wrong status, wrong body, broken
connection), the same worker served throughout, RSS grew < 5 % from the
baseline (10 % in the short run, where one allocator step is ~2 %), and
fds/greenlets/threads did not grow.

    python -m stress.soak                      # 1 000 000 requests per worker class
    python -m stress.soak --short              # 20 000 (CI)
    python -m stress.soak --requests 200000 --workers gevent
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))

from stress._common import Client, Server, Verdict, introspect, percentiles, say, server, worker_pid

ECHO_BODY = b'{"a":[1,2.5,{"b":"c\\u2603"}],"n":12345678901234567890}'
ECHO_EXPECTED = b'{"a":[1,2.5,{"b":"c\xe2\x98\x83"}],"n":12345678901234567890}'


@dataclass(frozen=True)
class Endpoint:
    weight: int
    method: str
    target: str
    expected: int
    body: bytes | None = None
    exact_body: bytes | None = None


MIX = [
    Endpoint(8, "GET", "/_matrix/client/versions", 200),
    Endpoint(2, "HEAD", "/_matrix/client/versions", 200, exact_body=b""),
    Endpoint(2, "OPTIONS", "/_matrix/client/versions", 204, exact_body=b""),
    Endpoint(4, "GET", "/_matrix/client/v3/rooms/!r%3Aexample.org/state/m.room.name/{i}", 200),
    Endpoint(
        4, "PUT", "/_matrix/client/v3/rooms/!r%3Aexample.org/send/m.room.message/t{i}", 200, b'{"body":"hi"}'
    ),
    Endpoint(4, "POST", "/_demo/echo", 200, ECHO_BODY, ECHO_EXPECTED),
    Endpoint(1, "POST", "/_demo/echo", 400, b"not json"),
    Endpoint(1, "GET", "/_demo/echo", 405),
    Endpoint(2, "GET", "/_demo/error/notfound", 404),
    Endpoint(1, "GET", "/_demo/error/forbidden", 403),
    Endpoint(1, "GET", "/_demo/error/ratelimit", 429),
    Endpoint(2, "GET", "/nope/{i}", 404),
    Endpoint(1, "GET", "/_demo/stream?bytes=200000", 200),
    Endpoint(1, "GET", "/_demo/large?items=300", 200),
    Endpoint(2, "GET", "/_demo/hello?name=soak{i}", 200),
    Endpoint(2, "GET", "/_matrix/static/", 200),
    Endpoint(1, "GET", "/", 302),
    Endpoint(1, "GET", "/_demo/redirect", 302),
    Endpoint(2, "GET", "/_demo/slow?seconds=0", 200),
    Endpoint(1, "GET", "/_demo/slow-uncancellable?seconds=0", 200),
    Endpoint(1, "GET", "/_demo/stats", 200),
]
METRICS_EVERY = 5000  # now and then: the public port must keep refusing /metrics


def build_schedule() -> list[Endpoint]:
    schedule: list[Endpoint] = []
    for endpoint in MIX:
        schedule.extend([endpoint] * endpoint.weight)
    # Interleave so that each stretch of the schedule hits every endpoint.
    return (
        [schedule[(i * 7) % len(schedule)] for i in range(len(schedule))] if len(schedule) % 7 else schedule
    )


@dataclass
class Tally:
    done: int = 0
    errors: int = 0
    samples: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def error(self, text: str) -> None:
        with self.lock:
            self.errors += 1
            if len(self.samples) < 10:
                self.samples.append(text)


def run_batch(running: Server, clients: list[Client], count: int, offset: int, tally: Tally) -> None:
    schedule = build_schedule()
    per_client = [count // len(clients) + (1 if i < count % len(clients) else 0) for i in range(len(clients))]

    def loop(index: int, client: Client, n: int) -> None:
        base = offset + index * 1_000_003
        local_latencies: list[float] = []
        for k in range(n):
            seq = base + k
            if seq % METRICS_EVERY == 0:
                endpoint = Endpoint(1, "GET", "/metrics", 404)  # not on the public port
            else:
                endpoint = schedule[seq % len(schedule)]
            target = endpoint.target.replace("{i}", str(seq))
            started = time.perf_counter()
            try:
                reply = client.request(endpoint.method, target, endpoint.body)
            except Exception as exc:  # noqa: BLE001 - every failure is counted
                tally.error(f"{endpoint.method} {target}: {type(exc).__name__}: {exc}")
                continue
            if k % 50 == 0:
                local_latencies.append(time.perf_counter() - started)
            if reply.status != endpoint.expected:
                tally.error(f"{endpoint.method} {target}: {reply.status} {reply.body[:120]!r}")
            elif endpoint.exact_body is not None and reply.body != endpoint.exact_body:
                tally.error(f"{endpoint.method} {target}: body {reply.body[:120]!r}")
        with tally.lock:
            tally.done += n
            tally.latencies.extend(local_latencies)

    threads = [
        threading.Thread(target=loop, args=(i, c, n))
        for i, (c, n) in enumerate(zip(clients, per_client, strict=True))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def soak(kind: str, total: int, concurrency: int, verdict: Verdict, max_rss_growth: float = 5.0) -> None:
    say(f"== {kind}: {total} requests, {concurrency} keep-alive clients")
    with server(kind, threads=8) as running:
        pid = worker_pid(running)
        clients = [Client(running.host, running.port) for _ in range(concurrency)]
        tally = Tally()
        warmup = max(2000, total // 20)
        # First with more connections than the gthread pool has threads, so that
        # every thread exists before the baseline (a pool grows on demand).
        crowd = [Client(running.host, running.port) for _ in range(12)]
        run_batch(running, crowd, 1200, 0, tally)
        for client in crowd:
            client.close()
        run_batch(running, clients, warmup - 1200, 1200, tally)
        baseline = introspect(running)
        say(f"  baseline after {warmup} requests: {json.dumps(baseline)}")
        checkpoints: list[dict[str, Any]] = []
        remaining = total - warmup
        steps = 10
        started = time.monotonic()
        done = warmup
        for step in range(steps):
            count = remaining // steps + (remaining % steps if step == steps - 1 else 0)
            run_batch(running, clients, count, done, tally)
            done += count
            point = introspect(running)
            point["requests"] = done
            checkpoints.append(point)
            say(
                f"  {done:>9} requests  rss={point['rss_kib']} KiB fds={point['fds']} "
                f"threads={point['threads']} greenlets={point['greenlets']} errors={tally.errors}"
            )
        elapsed = time.monotonic() - started
        final = checkpoints[-1]
        for client in clients:
            client.close()
        still_pid = running.worker_pids()
        log_tail = running.log_tail(20)
    rss_growth = 100.0 * (final["rss_kib"] - baseline["rss_kib"]) / baseline["rss_kib"]
    rate = remaining / elapsed if elapsed else 0.0
    figures = {
        "requests": tally.done,
        "errors": tally.errors,
        "req_per_s": round(rate),
        "rss_baseline_kib": baseline["rss_kib"],
        "rss_final_kib": final["rss_kib"],
        "rss_max_kib": max(p["rss_kib"] for p in checkpoints),
        "rss_growth_pct": round(rss_growth, 2),
        "fds": [baseline["fds"], final["fds"]],
        "threads": [baseline["threads"], final["threads"]],
        "greenlets": [baseline["greenlets"], final["greenlets"]],
        "gc_objects": [baseline["gc_objects"], final["gc_objects"]],
        "latency_ms": percentiles(tally.latencies),
    }
    verdict.figure(kind, figures)
    say(f"  figures: {json.dumps(figures)}")
    for sample in tally.samples:
        say(f"  error sample: {sample}")
    verdict.check(tally.errors == 0, f"{kind}: {tally.errors} errors in {tally.done} requests")
    verdict.check(still_pid == [pid], f"{kind}: the same worker served throughout ({pid} -> {still_pid})")
    verdict.check(
        rss_growth < max_rss_growth, f"{kind}: worker RSS growth {rss_growth:.2f} % < {max_rss_growth:g} %"
    )
    verdict.check(final["fds"] <= baseline["fds"] + 2, f"{kind}: fds {baseline['fds']} -> {final['fds']}")
    verdict.check(
        final["threads"] <= baseline["threads"] + 1,
        f"{kind}: threads {baseline['threads']} -> {final['threads']}",
    )
    verdict.check(
        final["greenlets"] <= baseline["greenlets"] + 2,
        f"{kind}: greenlets {baseline['greenlets']} -> {final['greenlets']}",
    )
    if tally.errors:
        say(log_tail)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=1_000_000, help="requests per worker class")
    parser.add_argument("--short", action="store_true", help="20 000 requests per worker class (CI)")
    parser.add_argument("--workers", default="pywsgi,gevent,gthread", help="comma-separated worker classes")
    parser.add_argument("--concurrency", type=int, default=4, help="keep-alive client connections")
    parser.add_argument(
        "--max-rss-growth",
        type=float,
        default=None,
        help="allowed RSS growth in %% (5; 10 with --short, where one allocator step is ~2 %%)",
    )
    args = parser.parse_args(argv)
    total = 20_000 if args.short else args.requests
    max_rss_growth = args.max_rss_growth or (10.0 if args.short else 5.0)
    verdict = Verdict("soak")
    for kind in args.workers.split(","):
        soak(kind.strip(), total, args.concurrency, verdict, max_rss_growth)
    return verdict.finish()


if __name__ == "__main__":
    sys.exit(main())
