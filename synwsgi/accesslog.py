"""The "Processed request" line Synapse writes for every request.

Written when the server closes the response body, so the send time and the
`!` (response not finished: client gone, failure mid-stream) are known.
Secrets in the query string never reach the log.
"""

from __future__ import annotations

import logging
import re
import time
from typing import TYPE_CHECKING

from .hooks import RequestHooks

if TYPE_CHECKING:
    from .body import ResponseBody
    from .request import SynapseRequest

_LOGGER_NAME = "synwsgi.access"
access_logger = logging.getLogger(_LOGGER_NAME)
_ACCESS_FORMAT = (
    '%s - %s - {%s} Processed request: %.3fsec/%.3fsec ru=(%.3fsec, %.3fsec) %sB %s "%s %s %s" "%s"'
)

_SECRET_PARAM = re.compile(r"(^|[&;])((?:access(?:_|%5f)token|client(?:_|%5f)secret)=)[^&;]*", re.IGNORECASE)


def redact_uri(raw_path: str, query_string: str) -> str:
    """The request URI with `access_token` and `client_secret` values hidden."""
    if not query_string:
        return raw_path
    return raw_path + "?" + _SECRET_PARAM.sub(r"\1\2<redacted>", query_string)


_CPU_USAGE = object()  # request.hook_state key of the measured (user, system) CPU


def finished_cpu_usage(request: SynapseRequest) -> tuple[float, float]:
    """`request.cpu_usage()`, measured once per request however many hooks ask.

    The access log and the metrics both report the handling's CPU; each
    measurement is a `getrusage` system call, so the first hook to ask
    stores the result in `request.hook_state` for the others.
    """
    state = request.hook_state
    if state is None:
        return request.cpu_usage()
    usage: tuple[float, float] | None = state.get(_CPU_USAGE)
    if usage is None:
        usage = state[_CPU_USAGE] = request.cpu_usage()
    return usage


class AccessLogger(RequestHooks):
    """Logs `Processed request` on `synwsgi.access` (OPTIONS at DEBUG, others INFO)."""

    def __init__(self, site_tag: str = "synwsgi") -> None:
        self.site_tag = site_tag

    def request_finished(self, request: SynapseRequest, body: ResponseBody) -> None:
        method = request.method
        level = logging.DEBUG if method == "OPTIONS" else logging.INFO
        if not access_logger.isEnabledFor(level):
            return  # nothing is measured or formatted for a line nobody reads
        now = time.perf_counter()
        sent_at = request.processing_end or now
        user_cpu, system_cpu = finished_cpu_usage(request)
        environ = request.environ
        code = request.response_code if request.finished(body) else f"{request.response_code}!"
        # `Logger.log` would look up the caller's frame first (findCaller);
        # the record is built directly instead and formatted only by the
        # handlers (the message's `%` runs once, in `getMessage`).
        record = access_logger.makeRecord(
            _LOGGER_NAME,
            level,
            __file__,
            0,
            _ACCESS_FORMAT,
            (
                environ.get("REMOTE_ADDR") or "-",
                self.site_tag,
                request.requester,
                sent_at - request.start_time,
                now - sent_at,
                user_cpu,
                system_cpu,
                body.bytes_sent,
                code,
                method,
                redact_uri(request.raw_path, environ.get("QUERY_STRING", "")),
                environ.get("SERVER_PROTOCOL", "HTTP/1.1"),
                environ.get("HTTP_USER_AGENT") or "-",
            ),
            None,
            "request_finished",
        )
        access_logger.handle(record)
