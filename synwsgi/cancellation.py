"""`@cancellable` handlers, stopped when their client goes away.

Synapse cancels a handler's Deferred when the connection drops, and logs the
request as 499. In WSGI the client's socket is the only witness, so while a
cancellable handler runs a watcher peeks at it (`select` + `recv(MSG_PEEK)`;
an empty read means the client closed):

* under gevent the handler runs in its own greenlet, which the request's
  greenlet kills with `CancelledError` once the client is gone: the handler
  unwinds at whatever it was waiting on, `finally` blocks included;
* threads cannot be killed, so a watcher thread sets the scope's flag and the
  handler stops at its next `sleep()`, `check_cancelled()` or
  `request.is_disconnected()`.

Watchers only run for cancellable handlers, and stop as soon as the request
sends unread bytes (a body or a pipelined request): a peek cannot tell those
apart from a client that is still there.
"""

from __future__ import annotations

import contextvars
import logging
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from .connection import client_gone, is_gevent_socket

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

# nginx's "client closed request": logged for cancelled requests, never seen by clients.
HTTP_STATUS_REQUEST_CANCELLED = 499


class CancelledError(BaseException):
    """The request's handler was cancelled (its client went away).

    A `BaseException`, like `asyncio.CancelledError`, so `except Exception`
    in handler code does not swallow it.
    """


def cancellable(function: F) -> F:
    """Mark a servlet method as safe to stop half-way when the client leaves."""
    function.cancellable = True  # type: ignore[attr-defined]
    return function


def is_function_cancellable(function: Callable[..., Any]) -> bool:
    """Whether `function` (or the function behind a bound method) is `@cancellable`."""
    return bool(getattr(function, "cancellable", False))


class CancelScope:
    """The disconnect and cancellation state of one running handler."""

    __slots__ = ("_cancelled", "disconnected")

    def __init__(self) -> None:
        self.disconnected = False
        self._cancelled = threading.Event()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def cancel(self) -> None:
        self._cancelled.set()

    def raise_if_cancelled(self) -> None:
        if self._cancelled.is_set():
            raise CancelledError()

    def wait(self, seconds: float) -> None:
        """Sleep up to `seconds`, raising `CancelledError` as soon as cancelled."""
        if self._cancelled.wait(seconds):
            raise CancelledError()


_current_scope: contextvars.ContextVar[CancelScope | None] = contextvars.ContextVar(
    "synwsgi_cancel_scope", default=None
)


def check_cancelled() -> None:
    """Raise `CancelledError` if the running cancellable handler was cancelled."""
    scope = _current_scope.get()
    if scope is not None:
        scope.raise_if_cancelled()


def cooperate() -> None:
    """Let other requests run a moment, for handlers doing long CPU-bound work.

    Under gevent one greenlet computing holds up every other request of the
    worker; this waits until the hub has run the others (`gevent.idle`). On
    threaded workers it costs nothing. In a `@cancellable` handler it is also
    a cancellation point.
    """
    check_cancelled()
    monkey = sys.modules.get("gevent.monkey")
    if monkey is not None and monkey.is_module_patched("socket"):
        import gevent

        gevent.idle()


def sleep(seconds: float) -> None:
    """`time.sleep` that a cancellation interrupts on every worker type."""
    scope = _current_scope.get()
    if scope is None:
        time.sleep(seconds)
    else:
        scope.wait(seconds)


def run_cancellable(
    function: Callable[[], Any],
    sock: socket.socket | None,
    poll_interval: float,
    scope: CancelScope,
) -> Any:
    """Run `function()`, stopping it if the client behind `sock` disconnects.

    `scope` records what happened. Raises whatever `function` raised, or
    `CancelledError`.
    """
    token = _current_scope.set(scope)
    try:
        if sock is None:
            return function()
        if is_gevent_socket(sock):
            return _run_in_greenlet(function, sock, scope, poll_interval)
        return _run_with_watcher_thread(function, sock, scope, poll_interval)
    finally:
        _current_scope.reset(token)


def _run_in_greenlet(
    function: Callable[[], Any], sock: socket.socket, scope: CancelScope, poll_interval: float
) -> Any:
    import gevent

    outcome: list[Any] = []

    def call() -> None:
        # Capture everything: an exception escaping a greenlet is printed by
        # the hub, and the request greenlet re-raises it below anyway.
        try:
            outcome.append((True, function()))
        except BaseException as exc:  # noqa: BLE001 - handed back to the caller
            outcome.append((False, exc))

    handler = gevent.spawn(contextvars.copy_context().run, call)
    try:
        while True:
            handler.join(timeout=poll_interval)
            if handler.ready():
                break
            state = client_gone(sock)
            if state is None:
                handler.join()
                break
            if state:
                scope.disconnected = True
                scope.cancel()
                handler.kill(CancelledError(), block=True)
                break
    finally:
        if not handler.dead:
            # The request's own greenlet is being torn down: take the handler along.
            handler.kill(CancelledError(), block=False)
    ok, value = outcome[0] if outcome else (False, CancelledError())
    if ok:
        return value
    raise value


def _run_with_watcher_thread(
    function: Callable[[], Any], sock: socket.socket, scope: CancelScope, poll_interval: float
) -> Any:
    done = threading.Event()

    def watch() -> None:
        while not done.wait(poll_interval):
            state = client_gone(sock)
            if state is None:
                return
            if state:
                scope.disconnected = True
                scope.cancel()
                return

    watcher = threading.Thread(target=watch, name="synwsgi-disconnect-watcher", daemon=True)
    watcher.start()
    try:
        return function()
    finally:
        done.set()
        watcher.join()
