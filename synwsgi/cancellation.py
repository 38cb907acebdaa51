"""`@cancellable` handlers, stopped when their client goes away: the public API.

Synapse cancels a handler's Deferred when the connection drops and logs the
request as 499. In WSGI the client's socket is the only witness; how it is
watched and how a handler is stopped depends on the worker type and is
`runtime`'s job. What a handler sees is the same everywhere:

* `CancelledError` raised where it waits (gevent: at any blocking call;
  threads: at `sleep()`, `check_cancelled()`, `cooperate()` or
  `request.is_disconnected()`);
* `finally` blocks run, and the request is logged as 499.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable
from types import FunctionType, MethodType
from typing import Any, TypeVar

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
    """Whether `function` (or the function behind a bound method) is `@cancellable`.

    Asked for every request: a plain or bound Python function is read from
    its `__dict__`, since a `getattr` that misses (the common answer) costs
    an AttributeError raised and swallowed inside the interpreter.
    """
    if type(function) is MethodType:
        function = function.__func__
    if type(function) is FunctionType:
        return bool(function.__dict__.get("cancellable", False))
    return bool(getattr(function, "cancellable", False))


class CancelScope:
    """The disconnect and cancellation state of one running handler.

    `active` is true while the handler runs: a watcher that notices the
    client leaving after that must not disturb whatever the worker does next.
    """

    __slots__ = ("_cancelled", "active", "disconnected")

    def __init__(self) -> None:
        self.disconnected = False
        self.active = True
        self._cancelled = threading.Event()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def client_left(self) -> None:
        """The watcher saw the client go: cancel the handler."""
        self.disconnected = True
        self._cancelled.set()

    def raise_if_cancelled(self) -> None:
        if self._cancelled.is_set():
            raise CancelledError()

    def wait(self, seconds: float) -> None:
        """Sleep up to `seconds`, raising `CancelledError` as soon as cancelled."""
        if self._cancelled.wait(seconds):
            raise CancelledError()


current_scope: contextvars.ContextVar[CancelScope | None] = contextvars.ContextVar(
    "synwsgi_cancel_scope", default=None
)


def check_cancelled() -> None:
    """Raise `CancelledError` if the running cancellable handler was cancelled."""
    scope = current_scope.get()
    if scope is not None:
        scope.raise_if_cancelled()


def sleep(seconds: float) -> None:
    """`time.sleep` that a cancellation interrupts on every worker type."""
    scope = current_scope.get()
    if scope is None:
        time.sleep(seconds)
    else:
        scope.wait(seconds)
