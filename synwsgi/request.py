"""`SynapseRequest`: a Werkzeug request that knows its raw path, id and servlet.

Werkzeug's own `Request.__init__` parses the host, path and headers eagerly
(about 2 us); a JSON API rarely needs most of it, so this subclass fills
those attributes on first use instead.
"""

from __future__ import annotations

import contextvars
import itertools
import resource
import time
from collections.abc import Iterable
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote

from werkzeug.datastructures import EnvironHeaders, Headers, MultiDict
from werkzeug.utils import cached_property
from werkzeug.wrappers import Request

from .config import DEFAULT_CONFIG, ServerConfig
from .connection import client_socket
from .errors import Codes, SynapseError
from .headers import Header, safe_header

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

    from .body import ResponseBody
    from .cancellation import CancelScope
    from .hooks import RequestHooks
    from .responses import Response

_request_seq = itertools.count()

# Characters that stay unescaped when a raw path has to be rebuilt from PATH_INFO.
_PATH_SAFE = "/:@!$&'()*+,;=-._~"


def raw_path_from_environ(environ: WSGIEnvironment) -> str:
    """The request path as the client sent it: still percent-encoded, no query.

    gunicorn gives the request target in `RAW_URI`, the Werkzeug servers in
    `REQUEST_URI` too. Without either, `PATH_INFO` (already decoded) is quoted
    again, which cannot tell `%2F` from `/`.
    """
    target = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if target is None:
        path_info = environ.get("PATH_INFO", "")
        return quote(path_info.encode("latin-1"), safe=_PATH_SAFE) or "/"
    path = target.partition("?")[0]
    if path.startswith(("http://", "https://")):
        # absolute-form target: drop scheme and authority. `//a/b` is a path.
        authority_and_path = path.partition("://")[2]
        path = "/" + authority_and_path.partition("/")[2]
    script_name = environ.get("SCRIPT_NAME")
    if script_name:
        quoted_root = quote(script_name.encode("latin-1"), safe=_PATH_SAFE)
        if path.startswith(quoted_root):
            path = path[len(quoted_root) :]
    return path or "/"


current_request_var: contextvars.ContextVar[SynapseRequest | None] = contextvars.ContextVar(
    "synwsgi_request", default=None
)


def current_request() -> SynapseRequest | None:
    """The request being handled in this context (handler or body), if any."""
    return current_request_var.get()


def next_request_id(method: str, header_value: str | None = None) -> str:
    """`<METHOD>-<n>` from a per-process counter, or `<METHOD>-<header value>`."""
    if header_value:
        return f"{method}-{header_value}"
    return f"{method}-{next(_request_seq)}"


def _cpu_times() -> tuple[float, float]:
    usage = resource.getrusage(_RUSAGE_THREAD)
    return usage.ru_utime, usage.ru_stime


_RUSAGE_THREAD = getattr(resource, "RUSAGE_THREAD", resource.RUSAGE_SELF)


def _latin1_to_text(value: str) -> str:
    return value.encode("latin-1").decode("utf-8", "replace")


class SynapseRequest(Request):
    """One HTTP request, plus the state Synapse keeps on its request object.

    Attributes set per request are assigned in `__init__`; the rest start as
    the class-level defaults below, which costs nothing until one is changed.
    """

    shallow = False  # Werkzeug's: reading the body is allowed
    #: the name metrics and logs use for the handler
    servlet_name = "unknown"
    #: the mount prefix that led here (the raw path below it is `postpath`)
    prepath = ""
    #: what `respond_with_*` produced, if a handler used them
    response: Response | None = None
    #: the status sent, for logs and metrics
    response_code: int | None = None
    #: headers a handler set on the request (`setHeader`, `set_cors_headers`)
    response_headers: list[Header] | None = None
    #: the disconnect/cancellation state while a cancellable handler runs
    cancel_scope: CancelScope | None = None
    #: who made the request (a user id), for the access log; set by auth code
    requester: str | None = None
    #: the observability hooks of the site
    hooks: tuple[RequestHooks, ...] = ()
    #: each hook's per-request state, keyed by the hook (a slot of its own,
    #: so no hook needs a field here); a fresh dict when the site has hooks
    hook_state: dict[object, Any] | None = None
    processing_end: float | None = None
    _start_cpu: tuple[float, float] | None = None
    #: the pattern of the servlet that matched
    route: str | None = None

    def __init__(
        self,
        environ: WSGIEnvironment,
        raw_path: str | None = None,
        request_id: str | None = None,
        config: ServerConfig = DEFAULT_CONFIG,
    ) -> None:
        # Werkzeug's __init__ is skipped on purpose: see the module docstring.
        self.environ = environ
        self.method = environ.get("REQUEST_METHOD", "GET").upper()
        #: the percent-encoded path routing matches against
        self.raw_path = self.postpath = raw_path if raw_path is not None else raw_path_from_environ(environ)
        #: `GET-17`; tags every log record of this request
        self.request_id = request_id or next_request_id(self.method)
        self.config = config
        self.max_content_length = config.max_request_body_size
        #: the client's connection, when the server exposes it (see `connection`)
        self.client_socket = client_socket(environ)
        self.start_time = time.perf_counter()

    def start_cpu_accounting(self) -> None:
        self._start_cpu = _cpu_times()

    def cpu_usage(self) -> tuple[float, float]:
        """User and system CPU seconds used since `start_cpu_accounting`.

        Measured on the serving thread: under gevent it includes whatever
        other greenlets ran meanwhile.
        """
        if self._start_cpu is None:
            return 0.0, 0.0
        user, system = _cpu_times()
        return user - self._start_cpu[0], system - self._start_cpu[1]

    def finished(self, body: ResponseBody) -> bool:
        """Whether the whole response reached the server and the client was still there."""
        scope = self.cancel_scope
        return body.finished and not (scope is not None and scope.disconnected)

    # -- the attributes werkzeug would have set in __init__ ------------------

    @cached_property
    def headers(self) -> Headers:
        return EnvironHeaders(self.environ)

    @cached_property
    def scheme(self) -> str:
        return str(self.environ.get("wsgi.url_scheme", "http"))

    @cached_property
    def server(self) -> tuple[str, int | None] | None:
        name = self.environ.get("SERVER_NAME")
        if not name:
            return None
        port = self.environ.get("SERVER_PORT")
        return name, int(port) if port and port.isdigit() else None

    @cached_property
    def root_path(self) -> str:
        return _latin1_to_text(self.environ.get("SCRIPT_NAME") or "").rstrip("/")

    @cached_property
    def path(self) -> str:
        return "/" + _latin1_to_text(self.environ.get("PATH_INFO") or "").lstrip("/")

    @cached_property
    def query_string(self) -> bytes:
        return str(self.environ.get("QUERY_STRING", "")).encode("latin-1")

    @cached_property
    def remote_addr(self) -> str | None:
        return self.environ.get("REMOTE_ADDR")

    @cached_property
    def args(self) -> MultiDict[str, str]:
        """The query parameters; not valid UTF-8 (raw or %-encoded) is a 400.

        Werkzeug would raise UnicodeDecodeError on raw bytes (a 500) and
        re-quote bad %-sequences; Synapse refuses both.
        """
        try:
            text = self.query_string.decode("utf-8")
            pairs = parse_qsl(text, keep_blank_values=True, encoding="utf-8", errors="strict")
        except UnicodeDecodeError:
            raise SynapseError(
                HTTPStatus.BAD_REQUEST, "Query string is not valid UTF-8", Codes.INVALID_PARAM
            ) from None
        return MultiDict(pairs)

    # -- Synapse's request API -----------------------------------------------

    def setHeader(self, name: str, value: str) -> None:
        """Set a response header; it replaces any of that name the response has."""
        self.add_response_headers(((name, value),))

    def add_response_headers(self, headers: Iterable[Header]) -> None:
        """Add headers to whatever response goes out (values made header-safe)."""
        if self.response_headers is None:
            self.response_headers = []
        self.response_headers.extend(safe_header(name, value) for name, value in headers)

    def setResponseCode(self, code: int) -> None:
        self.response_code = code

    def is_disconnected(self) -> bool:
        """Whether the client is known to have gone (only watched for `@cancellable`).

        Inside a `@cancellable` handler this raises `CancelledError` once the
        client is gone, so a handler polling it stops on every worker type.
        """
        scope = self.cancel_scope
        if scope is None:
            return False
        scope.raise_if_cancelled()
        return scope.disconnected

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.request_id} {self.method} {self.raw_path!r}>"
