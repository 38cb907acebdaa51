"""Measure how long the gevent hub is blocked while psycopg works (run as a script).

Under gevent's monkey-patching a ticker greenlet wakes every 5 ms and records
the longest gap; meanwhile one greenlet runs `SELECT pg_sleep(0.3)`, the
notifier relay listens, and a waiter is woken through PostgreSQL. If psycopg
blocked the hub, the gap would be >= 300 ms. Prints `name=value` figures.
"""

from gevent import monkey

monkey.patch_all()

import sys  # noqa: E402
import time  # noqa: E402

import gevent  # noqa: E402
import psycopg  # noqa: E402

from synwsgi.notifier import Notifier, PostgresNotifierRelay  # noqa: E402

dsn = sys.argv[1]
gaps: list[float] = []
running = True


def ticker() -> None:
    last = time.perf_counter()
    while running:
        gevent.sleep(0.005)
        now = time.perf_counter()
        gaps.append(now - last)
        last = now


def slow_query() -> float:
    started = time.perf_counter()
    with psycopg.connect(dsn) as conn:
        conn.execute("SELECT pg_sleep(0.3)")
    return time.perf_counter() - started


relay = PostgresNotifierRelay(dsn, channel="hub_probe")
notifier = Notifier(relay)
notifier.notify([], 0)
assert relay.listening.wait(10)
looks: list[int] = []


def woken(position: int) -> bool:
    looks.append(position)
    return len(looks) > 1


tick = gevent.spawn(ticker)
gevent.sleep(0.05)
waiter = gevent.spawn(notifier.wait_for_events, {"!r"}, 0, 5000, woken)
query = gevent.spawn(slow_query)
gevent.sleep(0.1)
# Notify from "elsewhere": a second relay, as another process would.
other = Notifier(PostgresNotifierRelay(dsn, channel="hub_probe"))
other.notify(["!r"], 1)
waiter.join(5)
query_seconds = query.get(timeout=5)
running = False
tick.join()
other.close()
notifier.close()
print(f"max_gap_ms={max(gaps) * 1000:.1f}")
print(f"query_ms={query_seconds * 1000:.1f}")
print(f"woken={int(bool(waiter.value))}")
print(f"ticks={len(gaps)}")
