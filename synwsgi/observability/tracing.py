"""OpenTelemetry tracing: one server span per request, named after its servlet.

Only `tracing_hooks()` is needed to turn it on: it returns the hook when
`opentelemetry-api` is installed and nothing (importing nothing) when it is
not. Without a configured tracer provider OpenTelemetry's spans are no-ops and
no `Synapse-Trace-Id` header is sent.
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING, Any

from .hooks import RequestHooks

if TYPE_CHECKING:
    from ..body import ResponseBody
    from ..request import SynapseRequest
    from ..responses import Response

TRACE_ID_HEADER = "Synapse-Trace-Id"


def tracing_hooks() -> list[RequestHooks]:
    """`[Tracing()]` if OpenTelemetry is installed, else `[]`."""
    if importlib.util.find_spec("opentelemetry") is None:
        return []
    return [Tracing()]


class Tracing(RequestHooks):
    """Starts a SERVER span per request and makes it current for the handler."""

    def __init__(self, tracer_name: str = "synwsgi") -> None:
        from opentelemetry import context, trace

        self._trace = trace
        self._context = context
        self._tracer_name = tracer_name

    def request_started(self, request: SynapseRequest) -> None:
        trace = self._trace
        span = trace.get_tracer(self._tracer_name).start_span(
            request.method,
            kind=trace.SpanKind.SERVER,
            attributes={"http.request.method": request.method, "synwsgi.request_id": request.request_id},
        )
        assert request.hook_state is not None
        request.hook_state[self] = span
        # The request runs in a context of its own, so attaching needs no detach.
        self._context.attach(trace.set_span_in_context(span))

    def response_started(self, request: SynapseRequest, response: Response) -> None:
        span: Any = request.hook_state.get(self) if request.hook_state is not None else None
        if span is None:
            return
        span.update_name(request.servlet_name)
        span.set_attribute("synwsgi.servlet", request.servlet_name)
        if request.route is not None:
            span.set_attribute("http.route", request.route)
        span_context = span.get_span_context()
        if span_context.is_valid:
            response.headers.append((TRACE_ID_HEADER, format(span_context.trace_id, "032x")))

    def request_finished(self, request: SynapseRequest, body: ResponseBody) -> None:
        span: Any = request.hook_state.get(self) if request.hook_state is not None else None
        if span is None:
            return
        code = request.response_code or 0
        span.set_attribute("http.response.status_code", code)
        if code >= 500:
            span.set_status(self._trace.Status(self._trace.StatusCode.ERROR))
        span.end()
