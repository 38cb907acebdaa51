"""`RequestHooks`: what observability plugs into, at four points of a request.

The access log, metrics and tracing are each a `RequestHooks`; a `Site`
given none pays nothing for them. A hook that raises is logged once, with
its name, and the request goes on: observability never breaks a response,
and `request_finished` still runs for every request that started.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..body import ResponseBody
    from ..request import SynapseRequest
    from ..responses import Response

logger = logging.getLogger(__name__)


class RequestHooks:
    """Override what you need; every method is called in the request's context.

    Per-request state goes in `request.hook_state[self]`.
    """

    def request_started(self, request: SynapseRequest) -> None:
        """The request arrived (nothing is known but its method and path)."""

    def handler_started(self, request: SynapseRequest) -> None:
        """A servlet handler is about to run; `request.servlet_name` is final."""

    def response_started(self, request: SynapseRequest, response: Response) -> None:
        """The status and headers are about to be sent; headers may still be added."""

    def request_finished(self, request: SynapseRequest, body: ResponseBody) -> None:
        """The server closed the body: sent in full (`body.finished`) or not."""


class HookRunner:
    """The site's hooks, bound once; each call guarded on its own."""

    __slots__ = ("finished", "handler", "response", "started")

    def __init__(self, hooks: Sequence[RequestHooks]) -> None:
        # Only hooks that override a method are called for it.
        def bound(name: str) -> tuple[Callable[..., None], ...]:
            base = getattr(RequestHooks, name)
            return tuple(getattr(h, name) for h in hooks if getattr(type(h), name) is not base)

        self.started = bound("request_started")
        self.handler = bound("handler_started")
        self.response = bound("response_started")
        self.finished = bound("request_finished")


def run_hooks(callbacks: tuple[Callable[..., None], ...], *args: Any) -> None:
    """Call each of `callbacks`; one that raises is logged and the others still run."""
    for callback in callbacks:
        try:
            callback(*args)
        except Exception:
            owner = getattr(callback, "__self__", callback)
            logger.exception("request hook %s.%s failed", type(owner).__name__, callback.__name__)
