"""What differs between gevent workers and threaded ones, decided in one place.

A gunicorn gevent worker runs thousands of requests as greenlets on one
thread; sync/gthread workers and the Werkzeug dev server run one request per
thread. Six things depend on it, and only this module knows which it is:

* **running a `@cancellable` handler**: under gevent a hub io watcher calls
  back when the client's socket becomes readable (no timer and no greenlet,
  so a parked long-poll costs no CPU) and throws `CancelledError` into the
  request's greenlet; threads cannot be interrupted, so a watcher thread sets
  the scope's flag and the handler stops at its next cancellation point;
* **bounding a body read**: a socket timeout per wait everywhere, plus a
  gevent `Timeout` on the whole read (gunicorn's gevent worker would wait
  forever for a client dripping one byte at a time);
* **big JSON**: encoded in pieces, letting other greenlets run between
  them, under gevent only (threads are preempted anyway);
* **`cooperate()`**: `gevent.idle()` under gevent, nothing on threads;
* **memory** (`ServerConfig.gc_pacing`): under gevent, full garbage
  collections wait until no big JSON body is being sent (`collector`), and a
  big body, once sent, is freed in slices by a greenlet of its own rather
  than in one ~20 ms go; threads keep CPython's collector.
* **`share_hub()`**: keeps one keep-alive connection from holding a gevent
  worker (see `GeventRuntime.share_hub`), nothing on threads.

Either way a watcher stops as soon as the client sends unread bytes (a body,
a pipelined request): a peek cannot tell those from a client still there.
"""

from __future__ import annotations

import contextlib
import functools
import select
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

from ..cancellation import CancelledError, CancelScope, check_cancelled, current_scope
from ..jsonenc import is_large, iter_encode_canonical_json, iter_encode_json
from . import collector
from .connection import client_gone, peek

if TYPE_CHECKING:
    import socket

    from ..config import ServerConfig


class RequestLike(Protocol):
    """What the runtime needs of a request (`SynapseRequest` comes after it)."""

    config: ServerConfig
    cancel_scope: CancelScope | None

    @property
    def client_socket(self) -> socket.socket | None: ...

    @property
    def content_length(self) -> int | None: ...

    def read_raw_body(self) -> bytes: ...


class ThreadRuntime:
    """gunicorn sync/gthread, the Werkzeug dev server, and in-process calls."""

    name = "threads"
    #: Whether `pace_memory` has been decided for this process (threads: nothing to decide).
    memory_decided = True

    def pace_memory(self, on: bool) -> None:
        """Threads keep CPython's collector: a collecting thread does not stop the others for long."""

    def run_cancellable(
        self, function: Callable[[], Any], sock: socket.socket, scope: CancelScope, poll_interval: float
    ) -> Any:
        done = threading.Event()
        interval_ms = max(1, int(poll_interval * 1000))

        def watch() -> None:
            try:
                poller = select.poll()
                poller.register(sock.fileno(), select.POLLIN | select.POLLPRI)
                while not done.is_set():
                    if not poller.poll(interval_ms) or done.is_set():
                        continue
                    if peek(sock) is True:
                        scope.client_left()
                    return  # gone, or bytes pending: nothing more to learn
            except (OSError, ValueError):
                return  # cannot tell: never read as "gone"

        threading.Thread(target=watch, name="synwsgi-disconnect-watcher", daemon=True).start()
        try:
            return function()
        finally:
            done.set()  # the watcher ends within one poll period, unjoined

    def wait_event(self, event: threading.Event, seconds: float, poll_interval: float) -> bool:
        """`event.wait(seconds)` that a cancellation interrupts: threads cannot be
        interrupted, so wait in slices and check between them."""
        deadline = time.monotonic() + seconds
        while True:
            check_cancelled()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            if event.wait(min(poll_interval, remaining)):
                return True

    def bounded(self, seconds: float) -> contextlib.AbstractContextManager[object]:
        return contextlib.nullcontext()

    def big_json(
        self, obj: Any, large_items: int, chunk_size: int, canonical: bool = True
    ) -> Iterator[bytes] | None:
        return None

    def cooperate(self) -> None:
        return None

    def share_hub(self) -> None:
        """Threads are preempted: nothing to share."""
        return None


#: how long (seconds) a gevent worker may serve requests without its hub
#: polling sockets before a request lets the others go first
SHARE_HUB_AFTER = 0.005
#: a timer this short fires at the hub loop's next turn, after it polled
_POLL_ONCE = 1e-6


class GeventRuntime(ThreadRuntime):
    """gunicorn's gevent worker (sockets monkey-patched)."""

    name = "gevent"

    def __init__(self) -> None:
        import gevent

        self._gevent = gevent
        #: the hub loop's iteration last seen by `share_hub`, and since when
        self._seen_iteration = -1
        self._seen_at = 0.0
        #: Big JSON bodies being sent or freed (`collector` waits for none).
        self.large_in_flight = 0
        self.memory_decided = False
        self.pacing = False

    def pace_memory(self, on: bool) -> None:
        """`ServerConfig.gc_pacing`, decided at the worker's first request: full garbage
        collections paced by `collector`, big JSON bodies freed in slices once sent."""
        self.memory_decided = True
        self.pacing = on
        if on:
            collector.install(self._gevent.get_hub().loop, self._sending_large)

    def _sending_large(self) -> bool:
        return self.large_in_flight > 0

    def run_cancellable(
        self, function: Callable[[], Any], sock: socket.socket, scope: CancelScope, poll_interval: float
    ) -> Any:
        gevent = self._gevent
        # A hub io watcher with a callback: no timer, no greenlet of its own,
        # so a parked long-poll costs neither CPU nor a watcher's stack.
        try:
            watcher = gevent.get_hub().loop.io(sock.fileno(), 1)  # 1: readable
        except (OSError, ValueError):
            return function()  # a socket that cannot be watched: cannot tell, so run on
        watcher.start(self._on_readable, watcher, sock, gevent.getcurrent(), scope)
        try:
            return function()
        finally:
            scope.active = False
            watcher.stop()
            watcher.close()

    @staticmethod
    def _on_readable(watcher: Any, sock: socket.socket, target: Any, scope: CancelScope) -> None:
        """In the hub: the client's socket became readable while the handler runs."""
        watcher.stop()
        if peek(sock) is not True:
            return  # bytes pending or cannot tell: stop watching
        scope.client_left()
        # From the hub, as Greenlet.kill does; only while the handler runs.
        if scope.active and not target.dead:
            target.throw(CancelledError())

    def wait_event(self, event: threading.Event, seconds: float, poll_interval: float) -> bool:
        # gevent's patched Event: the hub wakes this greenlet on `set()` or at
        # the timer, and a cancellation is thrown in while it waits.
        return event.wait(seconds)

    def bounded(self, seconds: float) -> contextlib.AbstractContextManager[object]:
        timeout: contextlib.AbstractContextManager[object] = self._gevent.Timeout(seconds, TimeoutError)
        return timeout

    def big_json(
        self, obj: Any, large_items: int, chunk_size: int, canonical: bool = True
    ) -> Iterator[bytes] | None:
        if not is_large(obj, large_items):
            return None
        # Encoding a big body in one go would freeze every other greenlet;
        # so would freeing it in one go once it is sent (~20 ms per 100 000 events).
        encode = iter_encode_canonical_json if canonical else iter_encode_json
        holder = [obj]
        del obj
        return self._paced(encode(holder[0], chunk_size), holder)

    def _paced(self, pieces: Iterable[bytes], holder: list[Any], interval: float = 0.002) -> Iterator[bytes]:
        """`pieces`, letting other greenlets run whenever producing them took `interval` s;
        then the object in `holder` is freed in slices (`collector.release_in_slices`) by a
        greenlet of its own, once the response has ended.

        Sending already yields whenever the socket is full; yielding after
        every piece would cost a fast stream a quarter of its throughput.
        """
        idle = self._gevent.idle
        last = time.perf_counter()
        self.large_in_flight += 1
        try:
            for piece in pieces:
                yield piece
                now = time.perf_counter()
                if now - last >= interval:
                    idle()
                    last = time.perf_counter()
            pieces = ()  # the encoder's references to the body go with it (mypyc cannot `del` here)
            # Off the response's path: its end goes out now, the freeing follows.
            if self.pacing:
                self._gevent.spawn(self._release, [holder.pop()], interval)
        finally:
            holder.clear()
            self.large_in_flight -= 1

    def _release(self, holder: list[Any], interval: float) -> None:
        self.large_in_flight += 1
        try:
            collector.release_in_slices(holder, self._gevent.idle, interval)
        finally:
            self.large_in_flight -= 1

    def cooperate(self) -> None:
        self._gevent.idle()

    def share_hub(self) -> None:
        """Yield to the hub if it has not polled for `SHARE_HUB_AFTER` seconds.

        gunicorn's gevent worker reads a keep-alive connection's next request
        as soon as it has answered one, and a read that finds the bytes there
        does not yield. Under load the client has often sent its next request
        before the worker is done with the last one (the access line and the
        metrics are written after the response is sent), so one greenlet
        serves its connection again and again while every other connection
        waits: traced with a 1 ms ticker greenlet, the hub went 0.3-1 s
        without polling at 32 connections, all of it CPU spent on requests
        (p99 4-8x the no-hooks one). Yielding after every request ends that
        and costs ~15 % of the throughput (a hub round trip each); yielding
        only once the hub's loop has not turned for 5 ms bounds the wait at
        about that and costs little.
        """
        loop = self._gevent.get_hub().loop
        iteration = loop.iteration
        now = time.perf_counter()
        if iteration != self._seen_iteration:
            self._seen_iteration = iteration
            self._seen_at = now
        elif now - self._seen_at >= SHARE_HUB_AFTER:
            # Every request yields until the loop turns: the bound is on the
            # turn, not on each greenlet (32 greenlets taking 5 ms each in turn
            # kept the hub from polling for 160 ms). A timer, not `sleep(0)`:
            # that only runs greenlets already ready, and can come back before
            # the hub polled for sockets.
            self._gevent.sleep(_POLL_ONCE)


@functools.cache
def current() -> ThreadRuntime:
    """The runtime of this process: gevent when its sockets are monkey-patched.

    Asked at the first request, after gunicorn's gevent worker has patched.
    """
    monkey = sys.modules.get("gevent.monkey")
    if monkey is not None and monkey.is_module_patched("socket"):
        return GeventRuntime()
    return ThreadRuntime()


_memory_undecided = True


def _decide_memory(gc_pacing: bool) -> None:
    """At the process's first request: `ServerConfig.gc_pacing`, and whether requests
    share the hub (a module flag: the check costs every request one global read, not a call)."""
    global _memory_undecided, hub_sharing
    runtime = current()
    if not runtime.memory_decided:
        runtime.pace_memory(gc_pacing)
    if isinstance(runtime, GeventRuntime):
        hub_sharing = runtime.share_hub
    _memory_undecided = False


def run_handler(
    request: RequestLike, call: Callable[..., Any], callback: Callable[..., Any], kwargs: dict[str, Any]
) -> tuple[Any, CancelScope | None]:
    """`call(request, callback, kwargs)`, and a scope saying the client left, if it did.

    A `@cancellable` callback runs under `request.cancel_scope` (made by the
    `Site`) and is stopped when its client leaves. An uncancellable handler
    runs to its end; a client that left meanwhile is noted in the scope
    returned (the access log shows `200!`). That costs one syscall, and only
    for handlers slower than the poll interval.
    """
    if _memory_undecided:
        _decide_memory(request.config.gc_pacing)
    scope = request.cancel_scope
    if scope is not None:
        sock = request.client_socket
        token = current_scope.set(scope)
        try:
            if sock is None:
                return call(request, callback, kwargs), None
            result = current().run_cancellable(
                functools.partial(call, request, callback, kwargs),
                sock,
                scope,
                request.config.cancellation_poll_interval,
            )
            return result, None
        finally:
            scope.active = False
            current_scope.reset(token)
    started = time.monotonic()
    result = call(request, callback, kwargs)
    # The connection is looked up only now, for a slow handler: finding it
    # costs up to three environ lookups (`SynapseRequest.client_socket`),
    # which a fast handler never needs.
    if time.monotonic() - started > request.config.cancellation_poll_interval:
        sock = request.client_socket
        if sock is not None and client_gone(sock):
            gone = CancelScope()
            gone.disconnected = True
            return result, gone
    return result, None


def read_within_deadline(request: RequestLike) -> bytes:
    """Read the body within `body_read_timeout` s + its size at `body_min_rate` B/s.

    A socket timeout bounds each wait for data (a stalled client); the
    runtime bounds the whole read where it can (a dripping client).
    """
    sock = request.client_socket
    if sock is None:
        return request.read_raw_body()
    config = request.config
    expected = request.content_length or config.max_request_body_size
    deadline = config.body_read_timeout + expected / config.body_min_rate
    previous_timeout = sock.gettimeout()
    sock.settimeout(deadline)
    try:
        with current().bounded(deadline):
            return request.read_raw_body()
    finally:
        sock.settimeout(previous_timeout)


def cooperate() -> None:
    """Let other requests run a moment, for handlers doing long CPU-bound work.

    Under gevent one greenlet computing holds up every other request of the
    worker; this waits until the hub has run the others. On threaded workers
    it costs nothing. In a `@cancellable` handler it is also a cancellation point.
    """
    check_cancelled()
    current().cooperate()


#: `GeventRuntime.share_hub` once the first request found gevent, else None: the
#: `Site` calls it at the start of every request (a global read where it is None).
hub_sharing: Callable[[], None] | None = None
