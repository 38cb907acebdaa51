"""Long-polls that wake on new data: Synapse's `Notifier.wait_for_events`, for WSGI.

A `/sync`-style handler has read everything up to some stream position and
wants to wait, up to a timeout, until one of the things it listens for (string
keys: room ids, user ids, ...) moves past it. Another request that writes
calls `notify(keys, position)` after its commit, which wakes those waiters.

A parked request waits on one `threading.Event` of its own, through
`runtime.wait_event`, which knows the worker type: under gevent the wait
costs no CPU until `notify` sets the event or the timer fires, and a client
that leaves interrupts it with `CancelledError`; on threads it is cut in
slices of `cancellation_poll_interval` with a cancellation check between
them. Either way `finally` unregisters the waiter.

Beyond one process, a `NotifierRelay` carries each `notify` to every other
process (see `PostgresNotifierRelay`); the default needs nothing installed
and wakes waiters of this process only.

Positions are integers that only grow (a stream ordering, a database
sequence). A waiter is only woken by a position beyond the one it holds, so a
process's own notifications echoed back by a relay wake nobody twice.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Collection, Iterable
from typing import Any, Protocol, TypeVar

from ._internal import runtime
from .request import current_request

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Used when a wait runs outside a request (tests, background jobs).
DEFAULT_POLL_INTERVAL = 0.05


class _Waiter:
    """One parked wait: the keys it listens for and the position it holds."""

    __slots__ = ("event", "from_position", "keys", "woken_at")

    def __init__(self, keys: frozenset[str], from_position: int) -> None:
        self.event = threading.Event()
        self.keys = keys
        self.from_position = from_position
        # The highest position that woke it, for the next round (under the lock).
        self.woken_at = from_position

    def mark_woken(self, position: int) -> None:
        if position > self.woken_at:
            self.woken_at = position


class NotifierRelay(Protocol):
    """Carries notifications between processes (workers, hosts).

    `start(deliver)` is called once per process, on first use; the relay then
    calls `deliver(keys, position)` for every notification published anywhere
    (its own included), and `deliver(None, 0)` when it may have missed some
    (after a reconnect), which wakes every waiter.
    """

    def start(self, deliver: Callable[[Collection[str] | None, int], None]) -> None: ...

    def publish(self, keys: Collection[str], position: int) -> None: ...

    def close(self) -> None: ...


class Notifier:
    """Wake requests waiting for keys to move past a stream position.

    `relay` (optional) makes `notify` reach every process sharing it. Without
    one, only waiters of this process are woken, which is right for one
    worker, or when writes and waits happen in the same process.
    """

    def __init__(self, relay: NotifierRelay | None = None) -> None:
        self._lock = threading.Lock()
        # Only keys somebody waits on: the notifier keeps nothing else, so
        # its memory follows the parked requests, not the keys ever seen.
        self._waiters: dict[str, set[_Waiter]] = {}
        self._relay = relay
        self._relay_pid: int | None = None

    # -- writing side ---------------------------------------------------

    def notify(self, keys: Iterable[str], position: int) -> None:
        """Wake every waiter listening for one of `keys` and holding less than `position`.

        Call it after the write is committed: a woken waiter reads again
        and must see it. With a relay, the notification also goes to every
        other process.
        """
        keys = tuple(keys)
        self._ensure_relay()
        self._deliver(keys, position)
        if self._relay is not None:
            try:
                self._relay.publish(keys, position)
            except Exception:
                # The write is done; other processes' waiters will still see
                # it at their timeout. Never fail the writer's request.
                logger.exception("Could not relay a notification for %d keys", len(keys))

    def _deliver(self, keys: Collection[str] | None, position: int) -> None:
        """Wake local waiters; `keys=None` wakes all (a relay lost track)."""
        to_wake: list[_Waiter] = []
        with self._lock:
            if keys is None:
                for waiters in self._waiters.values():
                    to_wake.extend(waiters)
            else:
                for key in keys:
                    for waiter in self._waiters.get(key, ()):
                        if waiter.from_position < position:
                            waiter.mark_woken(position)
                            to_wake.append(waiter)
        for waiter in to_wake:
            waiter.event.set()

    # -- waiting side ---------------------------------------------------

    def wait_for_events(
        self,
        keys: Collection[str],
        from_position: int,
        timeout_ms: int,
        callback: Callable[[int], T],
    ) -> T:
        """Return `callback(from_position)` as soon as it is truthy, or at the timeout.

        `callback(position)` reads whatever happened after `position` (a
        `/sync` body, say) and returns something falsy when there is nothing.
        It runs once at once; while it finds nothing, the request waits until
        one of `keys` is notified past `from_position` and calls it again.
        The waiter is registered before the first call, so a notification
        racing with that read is never lost. A timeout (0 means: do not
        wait) returns the last, empty, result; a client that leaves raises
        `CancelledError` (on threads at the next slice of
        `cancellation_poll_interval`).
        """
        deadline = time.monotonic() + max(timeout_ms, 0) / 1000
        self._ensure_relay()
        waiter = _Waiter(frozenset(keys), from_position)
        self._register(waiter)
        try:
            while True:
                result = callback(from_position)
                if result:
                    return result
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._wait(waiter, remaining):
                    return result
        finally:
            self._unregister(waiter)

    def _register(self, waiter: _Waiter) -> None:
        with self._lock:
            # Registered before the first read: whatever commits after that
            # read began wakes this waiter; whatever committed before, the
            # read sees.
            for key in waiter.keys:
                self._waiters.setdefault(key, set()).add(waiter)

    def _unregister(self, waiter: _Waiter) -> None:
        with self._lock:
            for key in waiter.keys:
                waiters = self._waiters.get(key)
                if waiters is not None:
                    waiters.discard(waiter)
                    if not waiters:
                        del self._waiters[key]

    def _wait(self, waiter: _Waiter, seconds: float) -> bool:
        """Wait up to `seconds` to be woken; False on timeout. Clears the wake-up."""
        request = current_request()
        interval = request.config.cancellation_poll_interval if request is not None else DEFAULT_POLL_INTERVAL
        woken = runtime.current().wait_event(waiter.event, seconds, interval)
        if woken:
            with self._lock:
                waiter.event.clear()
                # Do not wake again for what the next read is about to see.
                waiter.from_position = waiter.woken_at
        return woken

    # -- introspection and lifecycle --------------------------------------

    def count_waiters(self) -> int:
        """How many waits are parked in this process (Synapse's listeners gauge)."""
        with self._lock:
            return len({waiter for waiters in self._waiters.values() for waiter in waiters})

    def _ensure_relay(self) -> None:
        """Start the relay once per process (after a fork, in the child again)."""
        if self._relay is None:
            return
        pid = os.getpid()
        if self._relay_pid == pid:
            return
        with self._lock:
            if self._relay_pid == pid:
                return
            self._relay_pid = pid
        self._relay.start(self._deliver)

    def close(self) -> None:
        """Stop the relay (its listener connection and thread)."""
        if self._relay is not None:
            self._relay.close()


class PostgresNotifierRelay:
    """Notifications between processes and hosts through PostgreSQL `LISTEN`/`NOTIFY`.

    Each process holds one listening connection, read by a background thread
    (a greenlet under gevent: psycopg 3.1.14+ waits on its sockets through
    gevent's patched `select`), which hands every notification to the local
    `Notifier`. `publish` sends `pg_notify` on a second connection; PostgreSQL
    delivers it to every listener, this process's own included (the
    positions make that echo harmless).

    Why PostgreSQL rather than Redis pub/sub: an application that runs on
    several hosts already shares a PostgreSQL database, so this adds no
    service to run, secure and monitor; `NOTIFY` is transactional (a
    notification sent inside the writing transaction is delivered only if it
    commits); and at a long-poll's scale (one notification per write) its
    throughput is far from a limit. Redis is what Synapse's workers use, for
    much larger streams of replication traffic than this.

    A payload is JSON `{"k": [keys], "p": position}`; keys that do not fit
    PostgreSQL's 8000-byte limit go in several notifications.
    """

    PAYLOAD_LIMIT = 7000
    # A database that does not answer must not hold up the writer for long.
    CONNECT_TIMEOUT = 5

    def __init__(self, dsn: str, channel: str = "synwsgi_notifier", reconnect_delay: float = 1.0):
        self.dsn = dsn
        self.channel = channel
        self.reconnect_delay = reconnect_delay
        self._publish_lock = threading.Lock()
        self._publisher: Any = None
        self._listener: Any = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        # Set once the listening connection is up (tests wait on it).
        self.listening = threading.Event()

    def start(self, deliver: Callable[[Collection[str] | None, int], None]) -> None:
        self._stopping.clear()
        self.listening.clear()
        # After a fork, connections inherited from the parent belong to it.
        self._publisher = None
        self._thread = threading.Thread(
            target=self._listen_forever, args=(deliver,), name="synwsgi-notifier-relay", daemon=True
        )
        self._thread.start()

    def publish(self, keys: Collection[str], position: int) -> None:
        import psycopg

        for payload in self._payloads(keys, position):
            with self._publish_lock:
                for attempt in (1, 2):
                    try:
                        if self._publisher is None or self._publisher.closed:
                            self._publisher = psycopg.connect(
                                self.dsn, autocommit=True, connect_timeout=self.CONNECT_TIMEOUT
                            )
                        self._publisher.execute("SELECT pg_notify(%s, %s)", (self.channel, payload))
                        break
                    except psycopg.OperationalError:
                        self._publisher = None
                        if attempt == 2:
                            raise

    def _payloads(self, keys: Collection[str], position: int) -> Iterable[str]:
        batch: list[str] = []
        size = 0
        for key in keys:
            cost = len(json.dumps(key).encode()) + 1
            if batch and size + cost > self.PAYLOAD_LIMIT:
                yield json.dumps({"k": batch, "p": position})
                batch, size = [], 0
            batch.append(key)
            size += cost
        if batch:
            yield json.dumps({"k": batch, "p": position})

    def _listen_forever(self, deliver: Callable[[Collection[str] | None, int], None]) -> None:
        import psycopg
        from psycopg import sql

        first = True
        while not self._stopping.is_set():
            try:
                with psycopg.connect(self.dsn, autocommit=True, connect_timeout=self.CONNECT_TIMEOUT) as conn:
                    self._listener = conn
                    conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
                    self.listening.set()
                    if not first:
                        # Notifications sent while we were away are lost: let
                        # every waiter look again.
                        deliver(None, 0)
                    first = False
                    # `timeout` lets close() be noticed without a notification.
                    while not self._stopping.is_set():
                        for notify in conn.notifies(timeout=1.0):
                            self._handle(notify.payload, deliver)
            except Exception:
                if self._stopping.is_set():
                    break
                self.listening.clear()
                logger.exception("Notifier relay lost its PostgreSQL connection; reconnecting")
                self._stopping.wait(self.reconnect_delay)
            finally:
                self._listener = None

    @staticmethod
    def _handle(payload: str, deliver: Callable[[Collection[str] | None, int], None]) -> None:
        try:
            message = json.loads(payload)
            keys = [str(key) for key in message["k"]]
            position = int(message["p"])
        except (ValueError, KeyError, TypeError):
            logger.warning("Ignoring a malformed notifier payload: %.100r", payload)
            return
        deliver(keys, position)

    def close(self) -> None:
        self._stopping.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
        self._thread = None
        with self._publish_lock:
            if self._publisher is not None:
                self._publisher.close()
                self._publisher = None
