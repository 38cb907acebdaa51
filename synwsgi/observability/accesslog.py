"""The "Processed request" line Synapse writes for every request.

Written when the server closes the response body, so the send time and the
`!` (response not finished: client gone, failure mid-stream) are known.
Secrets in the query string never reach the log.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import TYPE_CHECKING, Any

from .._internal.paths import redact_uri as redact_uri
from .hooks import RequestHooks

if TYPE_CHECKING:
    from ..body import ResponseBody
    from ..request import SynapseRequest

_LOGGER_NAME = "synwsgi.access"
access_logger = logging.getLogger(_LOGGER_NAME)
_ACCESS_FORMAT = (
    '%s - %s - {%s} Processed request: %.3fsec/%.3fsec ru=(%.3fsec, %.3fsec) %sB %s "%s %s %s" "%s"'
)


class AccessLogger(RequestHooks):
    """Logs `Processed request` on `synwsgi.access` (OPTIONS at DEBUG, others INFO)."""

    def __init__(self, site_tag: str | None = None) -> None:
        #: the listener's name in the line; None: the request's `ServerConfig.site_tag`
        self.site_tag = site_tag

    def request_finished(self, request: SynapseRequest, body: ResponseBody) -> None:
        method = request.method
        level = logging.DEBUG if method == "OPTIONS" else logging.INFO
        if not access_logger.isEnabledFor(level):
            return  # nothing is measured or formatted for a line nobody reads
        now = time.perf_counter()
        sent_at = request.processing_end or now
        user_cpu, system_cpu = request.cpu_usage()
        environ = request.environ
        code: object = request.response_code
        if not request.finished(body):
            code = f"{code}!"
        query = environ.get("QUERY_STRING")
        # The message's `%` runs once, when a handler formats the record.
        access_logger.handle(
            _new_record(
                level,
                (
                    environ.get("REMOTE_ADDR") or "-",
                    self.site_tag or request.config.site_tag,
                    request.requester,
                    sent_at - request.start_time,
                    now - sent_at,
                    user_cpu,
                    system_cpu,
                    body.bytes_sent,
                    code,
                    method,
                    redact_uri(request.raw_path, query) if query else request.raw_path,
                    environ.get("SERVER_PROTOCOL", "HTTP/1.1"),
                    environ.get("HTTP_USER_AGENT") or "-",
                ),
            )
        )


# What every access record shares (where it comes from, which process),
# made by a real LogRecord once per process.
_template: dict[str, Any] = {}
_LogRecord = logging.LogRecord


def _new_record(level: int, args: tuple[Any, ...]) -> logging.LogRecord:
    """A `LogRecord` as `Logger.log` would make, for a fraction of its cost.

    `Logger.log` looks up the caller's frame, and `LogRecord.__init__`
    derives the file and module names and asks for the process id, all the
    same for every access line: those come from a template, whose copy
    becomes the record's `__dict__` (one copy, rather than 20 insertions).
    Time, thread and level are per record. A custom record factory gets the
    usual path.
    """
    if logging.getLogRecordFactory() is not _LogRecord:
        return access_logger.makeRecord(
            _LOGGER_NAME, level, __file__, 0, _ACCESS_FORMAT, args, None, "request_finished"
        )
    if not _template:
        made = _LogRecord(_LOGGER_NAME, level, __file__, 0, _ACCESS_FORMAT, (), None, "request_finished")
        _template.update(made.__dict__)
    fields = _template.copy()
    now = time.time()
    millis = (now % 1.0) * 1000  # `int(...) + 0.0` of LogRecord, in float arithmetic (exact for now >= 0)
    fields["msecs"] = millis - millis % 1.0
    fields["relativeCreated"] = (now - _START_TIME) * 1000
    fields["created"] = now
    if logging.logThreads:
        fields["thread"] = threading.get_ident()
        fields["threadName"] = threading.current_thread().name
    fields["levelno"] = level
    fields["levelname"] = logging.getLevelName(level)
    fields["args"] = args
    record = _LogRecord.__new__(_LogRecord)
    record.__dict__ = fields
    return record


# `relativeCreated` counts from logging's own start (its module attribute).
_START_TIME: float = getattr(logging, "_startTime", time.time())
os.register_at_fork(after_in_child=_template.clear)  # a new process id and name
