"""Sync at scale: the example homeserver's gevent worker(s) holding N parked `/sync` long-polls.

Starts `examples/homeserver` with its own gunicorn config (SQLite, one gevent
worker of its default class, `worker_connections` sized for N; the class can
be changed with SYNWSGI_WORKER_CLASS), registers a few users in one room,
then:

1. **fan-out, 1 000**: 1 000 polls park; one message is sent; each poll's
   time from the send to its complete answer (which must hold the message);
2. **parked, N**: N polls park (default 10 000); over a quiet window, the
   worker's CPU (% of one core) and its RSS growth per parked poll;
3. **fan-out, N**: one message reaches all N;
4. **leaving**: min(N, 1 000) polls park, then every client closes its
   socket; how long until the worker has released them all (its fd count
   is back to the baseline).

Prints each figure with its target marked hit or miss and ends with one
`RESULT sync_scale {json}` line. Exits non-zero when a correctness check
fails (a poll without the message, an error, a poll never released) and,
with `--strict`, when a target is missed too.

    python -m stress.sync_scale                 # 10 000 parked polls
    python -m stress.sync_scale --short         # 300 polls, fan-out of 100 (CI)
    python -m stress.sync_scale --workers 2     # PostgreSQL (a throwaway cluster), 2 workers

With `--workers N` (N > 1) the example runs on PostgreSQL, notifications
crossing the workers through its LISTEN/NOTIFY relay; CPU, memory and fds are
summed over the workers.

The client side is one asyncio loop of raw sockets; the fd limit of this
process (and so of the server it starts) is raised to its hard limit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stress._common import HOST, PROJECT_ROOT, say
from tests.integration.servers import child_pids, free_port, open_fds, worker_rss_kib

HS_CONFIG = PROJECT_ROOT / "examples" / "homeserver" / "gunicorn.conf.py"
API = "/_matrix/client/v3"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

TARGETS = {
    "idle_cpu_pct": 2.0,
    "kib_per_poll": 20.0,
    "fanout_p99_s": 2.0,
    "fanout_small_p99_s": 0.3,  # the fan-out to 1 000
    "release_max_s": 1.0,
}


def raise_nofile() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


@dataclass
class Homeserver:
    host: str
    port: int
    process: subprocess.Popen[bytes]
    metrics_port: int

    def worker_pids(self) -> list[int]:
        return child_pids(self.process.pid)


@contextmanager
def database(workers: int, directory: str) -> Iterator[str]:
    """SQLite in `directory` for one worker; PostgreSQL (a throwaway cluster) for more:
    notifications then cross the workers through its LISTEN/NOTIFY relay."""
    if workers == 1:
        yield str(Path(directory) / "homeserver.db")
        return
    from tests._postgres import running_postgres

    with running_postgres() as postgres:
        yield postgres.create_database("scale")


@contextmanager
def homeserver(polls: int, workers: int = 1) -> Iterator[Homeserver]:
    """The example exactly as its config serves it (SQLite and one gevent worker, or
    PostgreSQL and `workers` of them), on a free port; `polls` parked in all.

    Started directly rather than through the test harness, which adds
    gunicorn's own access log: the example writes synwsgi's instead.
    """
    metrics_port = free_port()
    with (
        tempfile.TemporaryDirectory(prefix="synwsgi-scale-") as directory,
        database(workers, directory) as dsn,
    ):
        env = {
            **os.environ,
            "SYNWSGI_HS_DATABASE": dsn,
            "SYNWSGI_WORKERS": str(workers),
            # As shipped: metrics counted, served on a listener of their own.
            "SYNWSGI_HS_METRICS_BIND": f"{HOST}:{metrics_port}",
            "SYNWSGI_PARKED_POLLS": str(polls),
            "SYNWSGI_HS_RC_REGISTRATION": "1000,1000",
            "SYNWSGI_HS_RC_MESSAGE": "1000,1000",
            "SYNWSGI_LOG_LEVEL": "warning",
        }
        env.pop("GUNICORN_CMD_ARGS", None)
        port = free_port()
        with open(Path(directory) / "server.log", "wb") as log:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "gunicorn",
                    "--config",
                    str(HS_CONFIG),
                    "--bind",
                    f"{HOST}:{port}",
                    "--backlog",
                    "4096",
                ],
                cwd=PROJECT_ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        running = Homeserver(HOST, port, process, metrics_port)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    parked_polls(running)
                    if len(running.worker_pids()) < workers:
                        raise OSError("workers still booting")
                    break
                except OSError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError((Path(directory) / "server.log").read_text()[-3000:]) from None
                    time.sleep(0.2)
            yield running
        finally:
            process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(15)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def call(running: Homeserver, method: str, path: str, body: Any = None, token: str | None = None) -> Any:
    conn = http.client.HTTPConnection(running.host, running.port, timeout=60)
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        conn.request(method, API + path, None if body is None else json.dumps(body), headers)
        response = conn.getresponse()
        data = json.loads(response.read() or b"null")
        if response.status != 200:
            raise RuntimeError(f"{method} {path}: {response.status} {data}")
        return data
    finally:
        conn.close()


def percentiles(samples: list[float]) -> dict[str, float]:
    """p50/p99/max in seconds."""
    ordered = sorted(samples)
    return {
        "p50": ordered[len(ordered) // 2],
        "p99": ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))],
        "max": ordered[-1],
    }


def ms(figures: dict[str, float]) -> str:
    return ", ".join(f"{name} {value * 1000:.0f} ms" for name, value in figures.items())


def worker_cpu_seconds(pids: int | list[int]) -> float:
    """User + system CPU seconds of the worker(s) so far."""
    total = 0
    for pid in [pids] if isinstance(pids, int) else pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / CLOCK_TICKS


def total_rss_kib(pids: list[int]) -> int:
    return sum(worker_rss_kib(pid) for pid in pids)


def total_fds(pids: list[int]) -> int:
    return sum(len(open_fds(pid)) for pid in pids)


class Poll:
    """One raw-socket `/sync` long-poll."""

    def __init__(self, running: Homeserver, token: str, since: str) -> None:
        self.request = (
            f"GET {API}/sync?since={since}&timeout=120000 HTTP/1.1\r\n"
            f"Host: x\r\nAuthorization: Bearer {token}\r\n\r\n"
        ).encode()
        self.running = running
        self.writer: asyncio.StreamWriter | None = None
        self.reader: asyncio.StreamReader | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.running.host, self.running.port)
        self.writer.write(self.request)
        await self.writer.drain()

    async def answer(self) -> tuple[float, bytes]:
        assert self.reader is not None and self.writer is not None
        head = await self.reader.readuntil(b"\r\n\r\n")
        received = time.monotonic()
        status = head.split(b" ", 2)[1]
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        body = await self.reader.readexactly(length)
        self.writer.close()
        if status != b"200":
            raise RuntimeError(f"/sync answered {status!r}: {body[:200]!r}")
        return received, body

    def leave(self) -> None:
        assert self.writer is not None
        self.writer.close()


async def park(running: Homeserver, tokens: list[str], since: str, count: int) -> list[Poll]:
    polls = [Poll(running, tokens[index % len(tokens)], since) for index in range(count)]
    for start in range(0, count, 500):  # in batches, so the listen backlog keeps up
        await asyncio.gather(*(poll.open() for poll in polls[start : start + 500]))
    return polls


def parked_polls(running: Homeserver) -> int:
    """The gauge of parked long-polls (`synapse_notifier_listeners`), from the metrics listener."""
    conn = http.client.HTTPConnection(running.host, running.metrics_port, timeout=60)
    try:
        conn.request("GET", "/_synapse/metrics")
        text = conn.getresponse().read().decode()
    finally:
        conn.close()
    for line in text.splitlines():
        if line.startswith("synapse_notifier_listeners "):
            return int(float(line.split()[1]))
    raise RuntimeError("no synapse_notifier_listeners gauge")


async def wait_parked(running: Homeserver, count: int, timeout: float = 180) -> float:
    """Until `count` polls wait in the notifier (each was read, found empty, and parked).

    With several workers the gauge answers for whichever worker serves it,
    so there: until the workers' CPU has been idle for two 0.3 s intervals.
    """
    started = time.monotonic()
    pids = running.worker_pids()
    if len(pids) > 1:
        quiet, before = 0, worker_cpu_seconds(pids)
        while quiet < 2:
            if time.monotonic() - started > timeout:
                raise RuntimeError(f"{len(pids)} workers still busy after {timeout} s")
            await asyncio.sleep(0.3)
            now = worker_cpu_seconds(pids)
            quiet = quiet + 1 if now - before < 0.01 else 0
            before = now
        return time.monotonic() - started
    while (parked := await asyncio.to_thread(parked_polls, running)) < count:
        if time.monotonic() - started > timeout:
            raise RuntimeError(f"only {parked} of {count} polls parked")
        await asyncio.sleep(0.2)
    return time.monotonic() - started


async def fan_out(
    running: Homeserver, polls: list[Poll], sender: str, room_id: str, text: str
) -> tuple[list[float], float]:
    """Send `text`; return each poll's latency and the worker's CPU seconds per woken poll."""
    pid = running.worker_pids()
    waiting = [asyncio.ensure_future(poll.answer()) for poll in polls]
    cpu_before = worker_cpu_seconds(pid)
    sent_at = time.monotonic()
    await asyncio.to_thread(
        call,
        running,
        "PUT",
        f"/rooms/{room_id}/send/m.room.message/{text}",
        {"msgtype": "m.text", "body": text},
        sender,
    )
    answers = await asyncio.gather(*waiting)
    cpu_per_wake = (worker_cpu_seconds(pid) - cpu_before) / len(polls)
    # Canonical JSON: the event's body appears as exactly these bytes. Every
    # answer is checked for them (cheaply, so the client leaves the cores to
    # the server), and a sample is parsed in full.
    marker = json.dumps({"body": text}, separators=(",", ":"))[1:-1].encode()
    latencies = []
    for index, (received, body) in enumerate(answers):
        if marker not in body:
            raise RuntimeError(f"a poll woke without {text!r}: {body[:300]!r}")
        if index % max(1, len(answers) // 50) == 0:
            events = json.loads(body)["rooms"]["join"][room_id]["timeline"]["events"]
            if text not in [event["content"].get("body") for event in events]:
                raise RuntimeError(f"a poll woke without {text!r} in its timeline: {body[:300]!r}")
        latencies.append(received - sent_at)
    return latencies, cpu_per_wake


def mark(name: str, value: float, target: float, unit: str, results: dict[str, Any]) -> None:
    hit = value <= target
    results[name] = value
    results.setdefault("targets", {})[name] = {"target": target, "hit": hit}
    say(f"  {name:<22} {value:>10.3f} {unit:<4} target <= {target:g} {unit}: {'hit' if hit else 'MISS'}")


async def run(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {"polls": args.polls, "fanout_small": args.fanout, "workers": args.workers}
    with homeserver(args.polls, args.workers) as running:
        pid = running.worker_pids()
        users = []
        for index in range(args.users):
            body = {"username": f"scale{index}", "password": "pw", "auth": {"type": "m.login.dummy"}}
            users.append(call(running, "POST", "/register", body)["access_token"])
        room_id = call(running, "POST", "/createRoom", {"preset": "public_chat"}, users[0])["room_id"]
        for token in users[1:]:
            call(running, "POST", f"/rooms/{room_id}/join", {}, token)

        def since() -> str:
            return str(call(running, "GET", "/sync?timeout=0", token=users[0])["next_batch"])

        # Warm up (first requests allocate caches), then the baseline.
        for _ in range(3):
            await fan_out(running, await park(running, users, since(), 20), users[0], room_id, f"warm{_}")
        await asyncio.sleep(1)
        baseline_fds = total_fds(pid)
        baseline_rss = total_rss_kib(pid)
        say(f"worker(s) {pid}: {baseline_fds} fds, {baseline_rss} KiB RSS at rest")

        say(f"1. fan-out to {args.fanout} parked polls")
        polls = await park(running, users, since(), args.fanout)
        await wait_parked(running, args.fanout)
        latencies, cpu = await fan_out(running, polls, users[0], room_id, "small")
        figures = percentiles(latencies)
        say(f"  woken {len(latencies)}: {ms(figures)}; worker CPU {cpu * 1e6:.0f} us per woken poll")
        results["fanout_small_cpu_us"] = cpu * 1e6
        mark("fanout_small_p99_s", figures["p99"], TARGETS["fanout_small_p99_s"], "s", results)

        say(f"2. {args.polls} parked polls, {args.idle_seconds:g} s quiet")
        polls = await park(running, users, since(), args.polls)
        parked_in = await wait_parked(running, args.polls)
        say(f"  all parked {parked_in:.1f} s after the last connect")
        await asyncio.sleep(1)  # let the last answers to the gauge's requests settle
        cpu_before, wall_before = worker_cpu_seconds(pid), time.monotonic()
        await asyncio.sleep(args.idle_seconds)
        idle_cpu = (worker_cpu_seconds(pid) - cpu_before) / (time.monotonic() - wall_before) * 100
        rss = total_rss_kib(pid)
        mark("idle_cpu_pct", idle_cpu, TARGETS["idle_cpu_pct"], "%", results)
        mark("kib_per_poll", (rss - baseline_rss) / args.polls, TARGETS["kib_per_poll"], "KiB", results)
        results["rss_kib"] = {"baseline": baseline_rss, "parked": rss}

        say(f"3. fan-out to {args.polls} parked polls")
        latencies, cpu = await fan_out(running, polls, users[0], room_id, "large")
        figures = percentiles(latencies)
        say(f"  woken {len(latencies)}: {ms(figures)}; worker CPU {cpu * 1e6:.0f} us per woken poll")
        results["fanout_cpu_us"] = cpu * 1e6
        mark("fanout_p99_s", figures["p99"], TARGETS["fanout_p99_s"], "s", results)

        leaving = min(args.polls, 1000)
        say(f"4. {leaving} parked clients leave")
        await asyncio.sleep(1)
        baseline_fds = total_fds(pid)
        polls = await park(running, users, since(), leaving)
        await wait_parked(running, leaving)
        left_at = time.monotonic()
        for poll in polls:
            poll.leave()
        # Released: every wait ended (the gauge) and every socket closed (the fds).
        while (len(pid) == 1 and parked_polls(running)) or total_fds(pid) > baseline_fds:
            if time.monotonic() - left_at > 30:
                raise RuntimeError(f"{parked_polls(running)} polls never released")
            await asyncio.sleep(0.01)
        mark("release_max_s", time.monotonic() - left_at, TARGETS["release_max_s"], "s", results)
        # Still answering afterwards.
        call(running, "GET", "/account/whoami", token=users[0])
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--polls", type=int, default=10_000)
    parser.add_argument(
        "--fanout", type=int, default=1_000, help="the smaller fan-out (target p99 <= 300 ms)"
    )
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--idle-seconds", type=float, default=5.0)
    parser.add_argument("--short", action="store_true", help="300 polls, fan-out of 100, 2 s quiet (CI)")
    parser.add_argument("--strict", action="store_true", help="also fail when a target is missed")
    parser.add_argument(
        "--workers", type=int, default=1, help="gevent workers (more than one: PostgreSQL and its relay)"
    )
    args = parser.parse_args()
    if args.short:
        args.polls, args.fanout, args.users, args.idle_seconds = 300, 100, 5, 2.0
    hard = raise_nofile()
    if hard < args.polls + 1024:
        say(f"the fd limit ({hard}) is below {args.polls} polls + 1024")
        return 2
    try:
        results = asyncio.run(run(args))
    except RuntimeError as exc:
        say(f"FAILED: {exc}")
        say("RESULT sync_scale " + json.dumps({"error": str(exc)}))
        return 1
    say("RESULT sync_scale " + json.dumps(results))
    missed = [name for name, target in results["targets"].items() if not target["hit"]]
    if missed:
        say(f"targets missed: {', '.join(missed)}")
    return 1 if args.strict and missed else 0


if __name__ == "__main__":
    sys.exit(main())
