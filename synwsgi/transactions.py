"""`HttpTransactionCache`: idempotent PUTs by transaction id, as Synapse's.

Matrix clients retry `PUT .../send/{eventType}/{txnId}` until they get an
answer; the server must act once and give every retry the first answer.
The cache keys a transaction by the request path plus who sent it (the
device, or the access token for requesters without one, the guest, or the
application service), runs the handler's function for the first request,
and hands its result to every later or concurrent request with that key::

    txns = HttpTransactionCache()

    class SendServlet(RestServlet):
        PATTERNS = client_patterns("/rooms/(?P<room_id>[^/]*)/send/(?P<txn_id>[^/]*)$")

        def on_PUT(self, request, room_id, txn_id):
            requester = auth.get_user_by_req(request)
            return txns.fetch_or_execute_request(request, requester, self._send, request, room_id)

What the call returns follows `fn`: a plain function's value as it is, an
`async def`'s as an awaitable (`return await txns.fetch_or_execute_request(...)`,
as in Synapse's servlets).

Concurrency: a retry that arrives while the first request is still running
waits for it (blocking its thread, or its greenlet under gevent, where
`threading` is monkey-patched) and gets the same result, or the same
exception. A failure is not kept: the next retry runs `fn` again, as in
Synapse (rate limits and other transient errors must not stick). If the
first request is cancelled (its client left), a waiting retry runs `fn`
itself instead of failing.

Expiry: an entry lives for `CLEANUP_PERIOD_MS` (30 minutes) after the first
request started; Synapse sweeps every 30 minutes, so its entries live 30 to
60 minutes. Expired entries are dropped on the next call (at most one sweep
per period), so no timer thread is needed. The cache is per process: with
several gunicorn workers a retry reaching another worker runs again (as
with several Synapse workers without sticky routing).
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable, Generator, Hashable
from typing import Any, Generic, ParamSpec, Protocol, TypeVar, cast

from .clock import MonotonicClock

#: How long a transaction's response is kept, as Synapse's `CLEANUP_PERIOD`.
CLEANUP_PERIOD_MS = 30 * 60 * 1000

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")


class Clock(Protocol):
    """What the cache needs of a clock (Synapse's `Clock` has it)."""

    def time_msec(self) -> int: ...


class _Ready(Generic[T]):
    """An already known result that ported code can `await`."""

    __slots__ = ("value",)

    def __init__(self, value: T) -> None:
        self.value = value

    def __await__(self) -> Generator[Any, None, T]:
        return self.value
        yield  # pragma: no cover (makes this a generator)


class _Transaction:
    __slots__ = ("awaitable", "created_ms", "done", "error", "result", "retry")

    def __init__(self, created_ms: int) -> None:
        self.created_ms = created_ms
        # Made per transaction, at request time: under gevent this is
        # monkey-patched into a gevent Event, so waiting yields to the hub.
        self.done = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None
        self.awaitable = False
        self.retry = False


class HttpTransactionCache:
    """Responses of transactional requests by (path, requester) key."""

    def __init__(
        self,
        hs: object | None = None,
        clock: Clock | None = None,
        cleanup_period_ms: int = CLEANUP_PERIOD_MS,
    ) -> None:
        # `hs` for Synapse's signature: its clock is used if it has one.
        get_clock = getattr(hs, "get_clock", None)
        self.clock: Clock = clock or (get_clock() if get_clock is not None else MonotonicClock())
        self.cleanup_period_ms = cleanup_period_ms
        self.transactions: dict[Hashable, _Transaction] = {}
        # Held only for dict updates, never across a wait: safe with or
        # without gevent's patching.
        self._lock = threading.Lock()
        self._last_cleanup_ms = self.clock.time_msec()

    def _get_transaction_key(self, request: Any, requester: Any) -> Hashable:
        """The key of `request` by `requester`, as Synapse forms it.

        The raw request path, plus: the user for a guest, the application
        service for one, the user and device for a requester with a device,
        else the access token's id.
        """
        path: str = request.raw_path
        if getattr(requester, "is_guest", False):
            return (path, "guest", str(requester.user))
        app_service_id = getattr(requester, "app_service_id", None)
        if app_service_id is not None:
            return (path, "appservice", app_service_id)
        device_id = getattr(requester, "device_id", None)
        if device_id:
            return (path, "user", str(requester.user), device_id)
        access_token_id = getattr(requester, "access_token_id", None)
        if access_token_id is None:
            raise ValueError("a transaction needs a requester with a device_id or an access_token_id")
        return (path, "user_admin", access_token_id)

    def fetch_or_execute_request(
        self, request: Any, requester: Any, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs
    ) -> R:
        """The response of the first request with this key, running `fn(*args, **kwargs)` if none.

        Returns what `fn` returns (awaitable if `fn`'s result is); a failure
        of `fn` is raised to the first request and every concurrent retry.
        """
        key = self._get_transaction_key(request, requester)
        while True:
            txn, owner = self._claim(key)
            if owner:
                break
            txn.done.wait()
            if txn.retry:
                continue  # the first request was cancelled: run it ourselves
            if txn.error is not None:
                raise txn.error
            return cast(R, _Ready(txn.result) if txn.awaitable else txn.result)
        try:
            result = fn(*args, **kwargs)
        except BaseException as e:
            self._settle(key, txn, error=e)
            raise
        if inspect.isawaitable(result):
            txn.awaitable = True
            return cast(R, self._settle_when_done(key, txn, result))
        self._settle(key, txn, result=result)
        return result

    async def _settle_when_done(self, key: Hashable, txn: _Transaction, awaitable: Any) -> Any:
        try:
            result = await awaitable
        except BaseException as e:
            self._settle(key, txn, error=e)
            raise
        self._settle(key, txn, result=result)
        return result

    def _claim(self, key: Hashable) -> tuple[_Transaction, bool]:
        """The transaction under `key`, and whether this caller just created it."""
        now = self.clock.time_msec()
        with self._lock:
            if now - self._last_cleanup_ms >= self.cleanup_period_ms:
                self._cleanup_locked(now)
            txn = self.transactions.get(key)
            if txn is not None and now - txn.created_ms <= self.cleanup_period_ms:
                return txn, False
            txn = self.transactions[key] = _Transaction(now)
            return txn, True

    def _settle(
        self, key: Hashable, txn: _Transaction, result: Any = None, error: BaseException | None = None
    ) -> None:
        if error is not None:
            txn.error = error
            # A cancelled or killed first request (not an `Exception`) says
            # nothing about the transaction: a waiting retry runs it again.
            txn.retry = not isinstance(error, Exception)
            with self._lock:
                if self.transactions.get(key) is txn:
                    del self.transactions[key]
        else:
            txn.result = result
        txn.done.set()

    def _cleanup_locked(self, now: int) -> None:
        self._last_cleanup_ms = now
        expired = [
            key for key, txn in self.transactions.items() if now - txn.created_ms > self.cleanup_period_ms
        ]
        for key in expired:
            del self.transactions[key]

    def _cleanup(self) -> None:
        """Drop every expired entry now (Synapse's periodic job; here also done on use)."""
        now = self.clock.time_msec()
        with self._lock:
            self._cleanup_locked(now)
