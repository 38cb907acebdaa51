"""The "Processed request" line Synapse writes for every request.

Written when the server closes the response body, so the send time and the
`!` (response not finished: client gone, failure mid-stream) are known.
Secrets in the query string never reach the log.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from .hooks import RequestHooks
from .paths import redact_uri as redact_uri

if TYPE_CHECKING:
    from .body import ResponseBody
    from .request import SynapseRequest

access_logger = logging.getLogger("synwsgi.access")


class AccessLogger(RequestHooks):
    """Logs `Processed request` on `synwsgi.access` (OPTIONS at DEBUG, others INFO)."""

    def __init__(self, site_tag: str | None = None) -> None:
        #: the listener's name in the line; None: the request's `ServerConfig.site_tag`
        self.site_tag = site_tag

    def request_finished(self, request: SynapseRequest, body: ResponseBody) -> None:
        level = logging.DEBUG if request.method == "OPTIONS" else logging.INFO
        if not access_logger.isEnabledFor(level):
            return
        now = time.perf_counter()
        sent_at = request.processing_end or now
        user_cpu, system_cpu = request.cpu_usage()
        environ = request.environ
        code = f"{request.response_code}{'' if request.finished(body) else '!'}"
        access_logger.log(
            level,
            '%s - %s - {%s} Processed request: %.3fsec/%.3fsec ru=(%.3fsec, %.3fsec) %sB %s "%s %s %s" "%s"',
            environ.get("REMOTE_ADDR") or "-",
            self.site_tag or request.config.site_tag,
            request.requester,
            sent_at - request.start_time,
            now - sent_at,
            user_cpu,
            system_cpu,
            body.bytes_sent,
            code,
            request.method,
            redact_uri(request.raw_path, environ.get("QUERY_STRING", "")),
            environ.get("SERVER_PROTOCOL", "HTTP/1.1"),
            environ.get("HTTP_USER_AGENT") or "-",
        )
