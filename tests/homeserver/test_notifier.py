"""`synwsgi.Notifier`: in-process wake-ups, timeouts, cancellation on threads,
and the PostgreSQL relay between two processes.

The gevent side (a parked request costs nothing, a client leaving kills the
wait) runs under a real gunicorn gevent worker in `test_notifier_served.py`.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from synwsgi import JsonResource, Notifier, RestServlet, Site, SynapseRequest, cancellable
from synwsgi.notifier import PostgresNotifierRelay

from .conftest import PROJECT_ROOT


class Stream:
    """A toy event stream: `append` writes, then notifies; `since` reads."""

    def __init__(self, notifier: Notifier) -> None:
        self.notifier = notifier
        self.items: list[tuple[int, str, str]] = []
        self.lock = threading.Lock()

    def append(self, key: str, value: str) -> int:
        with self.lock:
            position = len(self.items) + 1
            self.items.append((position, key, value))
        self.notifier.notify([key], position)
        return position

    def since(self, keys: set[str], position: int) -> list[str]:
        with self.lock:
            return [value for pos, key, value in self.items if pos > position and key in keys]


def later(seconds: float, function: object, *args: object) -> threading.Thread:
    def run() -> None:
        time.sleep(seconds)
        function(*args)  # type: ignore[operator]

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_returns_at_once_when_something_newer_exists() -> None:
    notifier = Notifier()
    stream = Stream(notifier)
    stream.append("!room", "old")
    started = time.monotonic()
    result = notifier.wait_for_events({"!room"}, 0, 5000, lambda pos: stream.since({"!room"}, pos))
    assert result == ["old"]
    assert time.monotonic() - started < 0.1
    assert notifier.count_waiters() == 0


def test_wakes_on_notify_with_everything_in_order() -> None:
    notifier = Notifier()
    stream = Stream(notifier)
    stream.append("!room", "before")  # position 1: the waiter already has it

    def add_two() -> None:
        stream.append("!room", "first")
        stream.append("!room", "second")

    started = time.monotonic()
    later(0.2, add_two)
    result = notifier.wait_for_events({"!room"}, 1, 5000, lambda pos: stream.since({"!room"}, pos))
    elapsed = time.monotonic() - started
    assert result[0] == "first" and result == ["first", "second"][: len(result)]
    assert 0.18 < elapsed < 0.5, elapsed
    assert notifier.count_waiters() == 0


def test_other_keys_and_old_positions_do_not_wake() -> None:
    notifier = Notifier()
    woken: list[float] = []

    def callback(position: int) -> list[str]:
        woken.append(time.monotonic())
        return []

    later(0.05, notifier.notify, ["!other"], 10)
    later(0.1, notifier.notify, ["@me"], 3)  # not beyond the 5 the waiter holds
    started = time.monotonic()
    result = notifier.wait_for_events({"!room", "@me"}, 5, 400, callback)
    elapsed = time.monotonic() - started
    assert result == []  # a timeout returns normally, with the empty result
    assert 0.39 < elapsed < 0.6, elapsed
    assert len(woken) == 1  # the first look only: nothing woke it


def test_timeout_zero_does_not_wait() -> None:
    notifier = Notifier()
    started = time.monotonic()
    assert notifier.wait_for_events({"k"}, 0, 0, lambda pos: {}) == {}
    assert time.monotonic() - started < 0.05


def test_notify_racing_with_the_first_read_is_not_lost() -> None:
    """A notification between the first (empty) read and parking still wakes."""
    notifier = Notifier()
    reads = 0

    def callback(position: int) -> list[str]:
        nonlocal reads
        reads += 1
        if reads == 1:
            notifier.notify(["!room"], position + 1)  # lands while we "read"
            return []
        return ["new"]

    started = time.monotonic()
    assert notifier.wait_for_events({"!room"}, 0, 5000, callback) == ["new"]
    assert time.monotonic() - started < 0.1


def test_many_threads_each_woken_once() -> None:
    notifier = Notifier()
    stream = Stream(notifier)
    results: dict[int, tuple[list[str], float]] = {}

    def wait(index: int) -> None:
        key = f"!room{index % 5}"
        got = notifier.wait_for_events({key}, 0, 5000, lambda pos: stream.since({key}, pos))
        results[index] = (got, time.monotonic())

    threads = [threading.Thread(target=wait, args=(i,)) for i in range(50)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 2
    while notifier.count_waiters() < 50 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert notifier.count_waiters() == 50
    sent = time.monotonic()
    for room in range(5):
        stream.append(f"!room{room}", f"hello {room}")
    for thread in threads:
        thread.join(5)
    assert len(results) == 50
    for index, (got, at) in results.items():
        assert got == [f"hello {index % 5}"]
        assert at - sent < 0.5
    assert notifier.count_waiters() == 0


def test_a_client_leaving_ends_a_threaded_wait() -> None:
    """On threads, the wait checks the request's cancellation flag between slices.

    Werkzeug's threaded server, in this process: the disconnect watcher thread
    sets the flag when the client closes, and the parked handler leaves its
    wait within a slice (`cancellation_poll_interval`, 50 ms).
    """
    notifier = Notifier()

    class Wait(RestServlet):
        PATTERNS = ["/wait"]

        @cancellable
        def on_GET(self, request: SynapseRequest) -> tuple[int, object]:
            return 200, {"got": notifier.wait_for_events({"!room"}, 0, 10_000, lambda pos: [])}

    resource = JsonResource()
    Wait().register(resource)
    server = make_server("127.0.0.1", 0, Site({"/": resource}), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        client = socket.create_connection(("127.0.0.1", server.server_port))
        client.sendall(b"GET /wait HTTP/1.1\r\nHost: x\r\n\r\n")
        deadline = time.monotonic() + 5
        while notifier.count_waiters() < 1:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        left_at = time.monotonic()
        client.close()
        while notifier.count_waiters():
            assert time.monotonic() - left_at < 0.5, "the wait outlived its client"
            time.sleep(0.005)
    finally:
        server.shutdown()


# -- the PostgreSQL relay ------------------------------------------------------


@pytest.fixture(scope="module")
def relay_dsn(postgres: object) -> str:
    return postgres.create_database("notifier_relay")  # type: ignore[attr-defined, no-any-return]


@pytest.fixture
def relayed(relay_dsn: str) -> Iterator[tuple[Notifier, PostgresNotifierRelay]]:
    relay = PostgresNotifierRelay(relay_dsn, channel="test_relay")
    notifier = Notifier(relay)
    notifier.notify([], 0)  # starts the relay in this process
    assert relay.listening.wait(10)
    yield notifier, relay
    notifier.close()


NOTIFY_FROM_ANOTHER_PROCESS = textwrap.dedent(
    """
    import sys, time
    from synwsgi.notifier import Notifier, PostgresNotifierRelay
    dsn, keys, position, channel = sys.argv[1], sys.argv[2].split(","), int(sys.argv[3]), sys.argv[4]
    notifier = Notifier(PostgresNotifierRelay(dsn, channel=channel))
    notifier.notify(keys, position)
    print(time.time(), flush=True)
    notifier.close()
    """
)


def notify_from_another_process(
    dsn: str, keys: list[str], position: int, channel: str = "test_relay"
) -> float:
    """Run `notify` in a separate Python process; return when it was sent (epoch)."""
    done = subprocess.run(
        [sys.executable, "-c", NOTIFY_FROM_ANOTHER_PROCESS, dsn, ",".join(keys), str(position), channel],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=PROJECT_ROOT,
        check=True,
    )
    return float(done.stdout.split()[0])


def test_relay_wakes_a_waiter_of_another_process(
    relayed: tuple[Notifier, PostgresNotifierRelay], relay_dsn: str
) -> None:
    notifier, _ = relayed
    woken_at: list[float] = []
    positions: list[int] = []

    def callback(position: int) -> list[int]:
        positions.append(position)
        if len(positions) > 1:
            woken_at.append(time.time())
            return [1]
        return []

    thread = threading.Thread(
        target=lambda: notifier.wait_for_events({"!room:a", "@u:a"}, 7, 20_000, callback)
    )
    thread.start()
    deadline = time.monotonic() + 5
    while notifier.count_waiters() < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    # Another key, and an old position for ours: neither wakes it.
    notify_from_another_process(relay_dsn, ["!elsewhere:a"], 100)
    notify_from_another_process(relay_dsn, ["!room:a"], 7)
    time.sleep(0.3)
    assert woken_at == []
    sent_at = notify_from_another_process(relay_dsn, ["!room:a"], 8)
    thread.join(5)
    assert not thread.is_alive()
    assert woken_at and woken_at[0] - sent_at < 0.5, woken_at[0] - sent_at
    assert notifier.count_waiters() == 0


def test_relay_splits_big_key_sets(relayed: tuple[Notifier, PostgresNotifierRelay]) -> None:
    """Keys beyond PostgreSQL's 8000-byte payload limit go in several notifications."""
    notifier, relay = relayed
    keys = [f"!room{index:05d}:example.org" for index in range(1000)]
    assert len(list(relay._payloads(keys, 5))) > 1
    # Each key arrives, the last one included (published, then echoed back).
    other = Notifier()
    relay2 = PostgresNotifierRelay(relay.dsn, channel="test_relay")
    relay2.start(other._deliver)
    assert relay2.listening.wait(10)
    try:
        done = threading.Event()
        looks: list[int] = []

        def woken_twice(position: int) -> bool:
            looks.append(position)
            return len(looks) > 1

        thread = threading.Thread(
            target=lambda: (other.wait_for_events({keys[-1]}, 4, 10_000, woken_twice), done.set())
        )
        thread.start()
        time.sleep(0.1)
        notifier.notify(keys, 5)
        assert done.wait(5)
    finally:
        relay2.close()


HUB_PROBE = Path(__file__).with_name("_hub_probe.py")


def test_psycopg_does_not_block_the_gevent_hub(relay_dsn: str) -> None:
    """Under gevent, psycopg waits (a 300 ms query, LISTEN) let other greenlets run."""
    done = subprocess.run(
        [sys.executable, str(HUB_PROBE), relay_dsn],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=PROJECT_ROOT,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    figures = dict(line.split("=", 1) for line in done.stdout.split())
    # A blocked hub would show a gap of >= 300 ms (the query's pg_sleep); the
    # bound leaves room for a machine busy with other work.
    assert float(figures["max_gap_ms"]) < 150, figures
    assert float(figures["query_ms"]) >= 290, figures
    assert figures["woken"] == "1", figures


def test_relay_reconnects_and_wakes_everyone_once(relay_dsn: str) -> None:
    """A listener that lost its connection comes back, and every waiter looks again."""
    import psycopg

    relay = PostgresNotifierRelay(relay_dsn, channel="test_reconnect", reconnect_delay=0.1)
    notifier = Notifier(relay)
    notifier.notify([], 0)
    assert relay.listening.wait(10)
    looks: list[float] = []
    done = threading.Event()

    def callback(position: int) -> bool:
        looks.append(time.monotonic())
        return len(looks) >= 3

    thread = threading.Thread(
        target=lambda: (notifier.wait_for_events({"!r"}, 0, 20_000, callback), done.set())
    )
    thread.start()
    try:
        deadline = time.monotonic() + 5
        while notifier.count_waiters() < 1:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        with psycopg.connect(relay_dsn, autocommit=True) as admin:
            killed = admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = %s",
                ('LISTEN "test_reconnect"',),
            ).fetchall()
        assert killed
        deadline = time.monotonic() + 10
        while len(looks) < 2:  # woken by the reconnect
            assert time.monotonic() < deadline, "no wake-up after the reconnect"
            time.sleep(0.01)
        assert relay.listening.wait(10)
        # Notifications flow again (from another process, through PostgreSQL).
        notify_from_another_process(relay_dsn, ["!r"], 1, channel="test_reconnect")
        assert done.wait(10)
    finally:
        notifier.close()
        thread.join(5)
