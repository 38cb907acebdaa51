"""`DeferredDriver`: synwsgi's async driver for handlers that await Deferreds.

`ServerConfig(async_driver=DeferredDriver(ReactorThread.start()))`. For each
awaitable a handler returns, in the request's thread or greenlet:

1. the request body is read here, from the client's socket, which belongs
   to this thread (a gevent socket cannot be used from the reactor's);
2. the awaitable is started in the reactor's thread (`ensureDeferred`), or
   by the application's `start` (Synapse: in the request's `LoggingContext`,
   through `run_in_background`);
3. this thread waits for it on a `threading.Event`: gevent's when gevent has
   patched `threading` (the hub keeps running other greenlets, and a
   cancellation is thrown in while it waits), a native one otherwise, in
   slices with `check_cancelled()` between them for a `@cancellable`
   handler (synwsgi's cancellation under threads);
4. when the wait is cancelled (the client left a `@cancellable` handler),
   the Deferred is cancelled in the reactor, as Synapse does, and the
   handler is given `cancel_grace` seconds to unwind; the request then ends
   and is logged as 499. Code that shields work from cancellation goes on in
   the reactor: Synapse's `ResponseCache` (behind `/sync`) waits for the
   computation it started until that ends (at the poll's timeout), so that
   a retry can pick it up; Synapse logs its request when it ends, the
   bridge after the grace, so that no worker thread waits for it;
5. a failure is raised here; an error that describes itself the Synapse
   way (an int `code` and `error_dict(config)`) is raised as a
   `ForeignError`, whose `error_dict` passes the application's config
   (Synapse's `HomeServerConfig`), not synwsgi's `ServerConfig`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet import defer
from twisted.python.failure import Failure

from synwsgi._internal import runtime
from synwsgi.cancellation import CancelledError
from synwsgi.request import current_request, read_body

if TYPE_CHECKING:
    from synwsgi.request import SynapseRequest

    from .reactor import ReactorThread

#: how each awaitable is started in the reactor's thread: given the request (None
#: outside one) and a function returning the awaitable, returns a Deferred or an awaitable
Starter = Callable[["SynapseRequest | None", Callable[[], Any]], Any]

# Long enough never to end a request by itself: a handler's own timeouts
# (a /sync's `timeout`) end it; the server's worker timeout bounds the rest.
_NO_DEADLINE = 365 * 24 * 3600.0


class ForeignError(Exception):
    """An error raised by Twisted-side code that describes itself the Synapse way.

    synwsgi's error map renders any exception with an int `code` and an
    `error_dict(config)`; this one forwards to the original error, passing
    the config the application gave the driver.
    """

    def __init__(self, error: BaseException, config: object) -> None:
        super().__init__(str(error))
        self.error = error
        self.config = config
        self.code: int = getattr(error, "code")  # noqa: B009 - checked by the caller
        self.msg = str(getattr(error, "msg", "") or error)
        self.headers = getattr(error, "headers", None)

    @property
    def debug_context(self) -> object:
        return getattr(self.error, "debug_context", None)

    def error_dict(self, _config: object) -> Any:
        return self.error.error_dict(self.config)  # type: ignore[attr-defined]


def describes_itself(error: BaseException) -> bool:
    """Whether `error` carries an int `code` and an `error_dict` (Synapse's errors do)."""
    return isinstance(getattr(error, "code", None), int) and callable(getattr(error, "error_dict", None))


class DeferredDriver:
    """An `async_driver` that runs awaitables on a `ReactorThread`.

    Args:
        reactor_thread: the running reactor (`ReactorThread.start()`).
        start: called in the reactor's thread with the request and a function
            returning the awaitable, to start it in the application's context
            (Synapse: `run_in_background` under the request's `LoggingContext`);
            returns a Deferred or an awaitable.
        error_config: passed to `error_dict` of errors that describe
            themselves (Synapse: `hs.config`).
        cancel_grace: seconds a cancelled handler is given to unwind in the
            reactor before the request ends (the wait holds a gthread worker's
            thread, or a greenlet).
    """

    def __init__(
        self,
        reactor_thread: ReactorThread,
        start: Starter | None = None,
        error_config: object = None,
        cancel_grace: float = 1.0,
    ) -> None:
        self.reactor_thread = reactor_thread
        self.start = start
        self.error_config = error_config
        self.cancel_grace = cancel_grace

    def __call__(self, awaitable: Any) -> Any:
        request = current_request()
        if request is not None and _has_body(request):
            read_body(request)  # here: the client's socket belongs to this thread
        # gevent's Event once `threading` is patched: set from the reactor's
        # thread, it wakes this greenlet through the hub.
        done = threading.Event()
        outcome: list[Any] = []
        started: list[defer.Deferred[Any]] = []

        def finished(result: object) -> None:
            outcome.append(result)
            done.set()

        def start() -> None:
            try:
                if self.start is None:
                    deferred = _as_deferred(awaitable)
                else:
                    deferred = _as_deferred(self.start(request, lambda: awaitable))
            except BaseException:  # noqa: BLE001 - handed to the waiting thread
                finished(Failure())  # type: ignore[no-untyped-call]
                return
            started.append(deferred)
            deferred.addBoth(finished)

        def cancel() -> None:
            if started:
                started[0].cancel()

        reactor = self.reactor_thread.reactor
        reactor.callFromThread(start)
        scope = request.cancel_scope if request is not None else None
        try:
            if scope is None or request is None:
                done.wait(_NO_DEADLINE)  # not `@cancellable`: nothing interrupts this wait
            else:
                runtime.current().wait_event(done, _NO_DEADLINE, request.config.cancellation_poll_interval)
        except CancelledError:
            reactor.callFromThread(cancel)
            done.wait(self.cancel_grace)
            raise
        result = outcome[0]
        if isinstance(result, Failure):
            self._raise(result)
        return result

    def _raise(self, failure: Failure) -> None:
        error = failure.value
        assert error is not None
        if isinstance(error, defer.CancelledError):
            scope = current_request_scope()
            if scope is not None and scope.disconnected:
                raise CancelledError() from error
        if describes_itself(error):
            raise ForeignError(error, self.error_config) from error
        raise error.with_traceback(failure.getTracebackObject())  # type: ignore[no-untyped-call]


def current_request_scope() -> Any:
    request = current_request()
    return request.cancel_scope if request is not None else None


def _has_body(request: SynapseRequest) -> bool:
    environ = request.environ
    if environ.get("CONTENT_LENGTH"):
        return True
    return "chunked" in str(environ.get("HTTP_TRANSFER_ENCODING", "")).lower()


def _as_deferred(awaitable: Any) -> defer.Deferred[Any]:
    if isinstance(awaitable, defer.Deferred):
        return awaitable
    if hasattr(awaitable, "send"):  # a coroutine or a generator-based one
        return defer.ensureDeferred(awaitable)

    async def wait() -> Any:
        return await awaitable

    return defer.ensureDeferred(wait())
