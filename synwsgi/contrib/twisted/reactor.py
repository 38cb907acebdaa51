"""One Twisted reactor per worker process, running in a native thread of its own.

A reactor blocks in `epoll` until it has work; the worker's requests run
in other threads (gthread, the dev server) or greenlets (gevent) and hand
work over with `reactor.callFromThread`, the one thread-safe way in.

Under gunicorn's gevent worker the standard library is monkey-patched before
the application is imported: `threading` would start greenlets, which never
run while the reactor's thread blocks in `epoll`, and `select.epoll` is
removed. Hence:

* import this module before gevent patches, from the gunicorn config file
  (read by the master, before it forks the workers): the epoll reactor's
  module then holds the real `select.epoll`, and Twisted's thread pool
  module the real `threading` names;
* the reactor's thread and the threads of every Twisted `ThreadPool` (the
  database pool, `deferToThread`) are started with the original
  `_thread.start_new_thread`, never a greenlet.

Install the reactor in the worker, never in the master: an epoll instance
created before `fork()` would be shared by every worker.
"""

from __future__ import annotations

import _thread
import logging
import os
import sys
from collections.abc import Callable
from typing import Any, Protocol

from twisted.internet import defer
from twisted.python import threadpool
from twisted.python.failure import Failure

try:  # Linux; elsewhere Twisted's default reactor is used
    from twisted.internet import epollreactor
except ImportError:  # pragma: no cover - not on this platform
    epollreactor = None  # type: ignore[assignment]


class Reactor(Protocol):
    """What the bridge uses of a Twisted reactor."""

    def callFromThread(self, callable: Callable[..., Any], *args: Any) -> None: ...

    def callWhenRunning(self, callable: Callable[..., Any], *args: Any) -> Any: ...

    def run(self, installSignalHandlers: bool = ...) -> None: ...  # noqa: N803 - Twisted's name

    def stop(self) -> None: ...


logger = logging.getLogger(__name__)


def _original_thread_function(name: str) -> Any:
    """`_thread.<name>` as it was before gevent patched it (or as it is)."""
    monkey = sys.modules.get("gevent.monkey")
    if monkey is not None:
        return monkey.get_original("_thread", name)
    return getattr(_thread, name)


def gevent_patched_threads() -> bool:
    """Whether gevent has monkey-patched `threading` in this process."""
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and bool(monkey.is_module_patched("threading"))


class NativeThread:
    """The part of `threading.Thread` Twisted's `ThreadPool` uses, as a native thread.

    Used as `ThreadPool.threadFactory` when gevent has patched `threading`:
    a patched `Thread` would be a greenlet of the reactor's thread, which
    never yields to its hub, so the pool's work would never run.
    """

    def __init__(self, target: Callable[[], object], name: str | None = None, **_: object) -> None:
        self._target = target
        self.name = name or "synwsgi-native-thread"
        self.daemon = True
        self._finished = _original_thread_function("allocate_lock")()
        self._finished.acquire()
        self._started = False

    def start(self) -> None:
        self._started = True
        _original_thread_function("start_new_thread")(self._run, ())

    def _run(self) -> None:
        try:
            self._target()
        finally:
            self._finished.release()

    def join(self, timeout: float | None = None) -> None:
        if not self._started:
            return
        if self._finished.acquire(True, -1 if timeout is None else timeout):
            self._finished.release()

    def is_alive(self) -> bool:
        return self._started and bool(self._finished.locked())


class ReactorThread:
    """The process's reactor, running in a native daemon thread.

    `ReactorThread.start()` installs the reactor (epoll on Linux) unless one
    is installed already, starts it once per process (again in a forked
    child) and returns the running instance.
    """

    _instance: ReactorThread | None = None

    def __init__(self, reactor: Reactor) -> None:
        self.reactor = reactor
        self.thread_ident: int | None = None
        self._pid = os.getpid()

    @classmethod
    def start(cls, timeout: float = 10.0) -> ReactorThread:
        """The running reactor thread of this process, started on first use."""
        instance = cls._instance
        if instance is not None and instance._pid == os.getpid():
            return instance
        if gevent_patched_threads():
            # Every Twisted thread pool made from now on starts native threads.
            threadpool.ThreadPool.threadFactory = NativeThread  # type: ignore[assignment]
        instance = cls(_install_reactor())
        instance._run(timeout)
        cls._instance = instance
        return instance

    def _run(self, timeout: float) -> None:
        started = _original_thread_function("allocate_lock")()
        started.acquire()
        reactor = self.reactor

        def running() -> None:
            self.thread_ident = _original_thread_function("get_ident")()
            started.release()

        def main() -> None:
            reactor.callWhenRunning(running)
            try:
                reactor.run(installSignalHandlers=False)
            except BaseException:
                logger.exception("the Twisted reactor stopped with an error")
                raise

        _original_thread_function("start_new_thread")(main, ())
        # A native lock: a short wait, once per worker, before the first request.
        if not started.acquire(True, timeout):
            raise RuntimeError(f"the Twisted reactor did not start within {timeout} s")
        logger.info("Twisted reactor %s running in a thread of pid %d", type(reactor).__name__, self._pid)

    def in_reactor_thread(self) -> bool:
        return bool(_original_thread_function("get_ident")() == self.thread_ident)

    def call(self, function: Callable[..., Any], *args: Any, timeout: float = 60.0) -> Any:
        """`function(*args)` run in the reactor's thread; its result, awaited if it is a
        Deferred or a coroutine. For start-up work (building a homeserver) outside requests:
        it blocks the calling thread (and a gevent worker's hub) until done."""
        if self.in_reactor_thread():
            raise RuntimeError("ReactorThread.call from the reactor's own thread would deadlock")
        done = _original_thread_function("allocate_lock")()
        done.acquire()
        outcome: list[Any] = []

        def finished(result: object) -> None:
            outcome.append(result)
            done.release()

        def run() -> None:
            deferred: defer.Deferred[Any] = defer.maybeDeferred(_resolve, function, *args)
            deferred.addBoth(finished)

        self.reactor.callFromThread(run)
        if not done.acquire(True, timeout):
            raise TimeoutError(f"{function!r} did not finish within {timeout} s in the reactor")
        result = outcome[0]
        if isinstance(result, Failure):
            result.raiseException()
        return result

    def stop(self) -> None:
        """Stop the reactor (its thread ends; thread pools are stopped by Twisted)."""
        self.reactor.callFromThread(self.reactor.stop)
        type(self)._instance = None


def _resolve(function: Callable[..., Any], *args: Any) -> Any:
    result = function(*args)
    if isinstance(result, defer.Deferred):
        return result
    if hasattr(result, "__await__"):
        return defer.ensureDeferred(result)
    return result


def _install_reactor() -> Reactor:
    """The installed reactor, or a fresh epoll reactor installed now."""
    if "twisted.internet.reactor" not in sys.modules:
        if epollreactor is not None:
            epollreactor.install()  # type: ignore[no-untyped-call]
        elif gevent_patched_threads():  # pragma: no cover - not on Linux
            raise RuntimeError("import synwsgi.contrib.twisted before gevent patches the standard library")
    from twisted.internet import reactor

    return reactor
