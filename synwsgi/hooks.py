"""`RequestHooks`: what observability plugs into, at four points of a request.

The access log, metrics and tracing are each a `RequestHooks`; a `Site`
given none pays nothing for them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .body import ResponseBody
    from .request import SynapseRequest
    from .responses import Response


class RequestHooks:
    """Override what you need; every method is called in the request's context."""

    def request_started(self, request: SynapseRequest) -> None:
        """The request arrived (nothing is known but its method and path)."""

    def handler_started(self, request: SynapseRequest) -> None:
        """A servlet handler is about to run; `request.servlet_name` is final."""

    def response_started(self, request: SynapseRequest, response: Response) -> None:
        """The status and headers are about to be sent; headers may still be added."""

    def request_finished(self, request: SynapseRequest, body: ResponseBody) -> None:
        """The server closed the body: sent in full (`body.finished`) or not."""
