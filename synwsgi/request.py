"""`SynapseRequest`: a Werkzeug request that knows its raw path, id and servlet.

Werkzeug's own `Request.__init__` parses the host, path and headers eagerly
(about 2 us); a JSON API rarely needs most of it, so this subclass fills
those attributes on first use instead (tests/test_werkzeug_adapter.py fails
loudly if a Werkzeug upgrade adds one). Synapse's spellings come from
`compat.SynapseRequestCompat`.
"""

from __future__ import annotations

import base64
import contextvars
import io
import itertools
import os
import resource
import time
from collections.abc import Iterable
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from werkzeug.datastructures import EnvironHeaders, Headers, MultiDict
from werkzeug.exceptions import ClientDisconnected, RequestEntityTooLarge
from werkzeug.utils import cached_property
from werkzeug.wrappers import Request

from . import runtime
from .compat import SynapseRequestCompat
from .config import DEFAULT_CONFIG, ServerConfig
from .connection import client_socket
from .errors import Codes, RequestTooLargeError, SynapseError
from .headers import Header, safe_header
from .paths import raw_path_from_environ

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

    from .body import ResponseBody
    from .cancellation import CancelScope
    from .responses import Response


# Request ids: Synapse's `GET-<n>` from a per-process counter, with the
# process's tag between them (`GET-k3x9q-17`): five random base32 characters
# drawn when the process starts (and again in every forked worker), so that
# no two workers of a server, and no worker before and after a restart, log
# the same id (a clash needs two processes to draw the same 25 bits).
# `worker_tag()` lets a gunicorn hook log which worker has which tag.


def _new_worker_tag() -> str:
    return base64.b32encode(os.urandom(5)).decode("ascii")[:5].lower()


_worker_tag = _new_worker_tag()
_request_seq = itertools.count()


def worker_tag() -> str:
    """This process's tag in its request ids (`GET-<tag>-<n>`)."""
    return _worker_tag


def _reset_sequence() -> None:
    global _request_seq, _worker_tag
    _worker_tag = _new_worker_tag()
    _request_seq = itertools.count()


os.register_at_fork(after_in_child=_reset_sequence)


current_request_var: contextvars.ContextVar[SynapseRequest | None] = contextvars.ContextVar(
    "synwsgi_request", default=None
)


def current_request() -> SynapseRequest | None:
    """The request being handled in this context (handler or body), if any."""
    return current_request_var.get()


def next_request_id(method: str, header_value: str | None = None) -> str:
    """`<METHOD>-<worker tag>-<n>` from the worker's counter, or `<METHOD>-<header value>`."""
    if header_value:
        return f"{method}-{header_value}"
    return f"{method}-{_worker_tag}-{next(_request_seq)}"


def _cpu_times() -> tuple[float, float]:
    usage = resource.getrusage(_RUSAGE_THREAD)
    return usage.ru_utime, usage.ru_stime


_RUSAGE_THREAD = getattr(resource, "RUSAGE_THREAD", resource.RUSAGE_SELF)


def _latin1_to_text(value: str) -> str:
    return value.encode("latin-1").decode("utf-8", "replace")


class SynapseRequest(SynapseRequestCompat, Request):
    """One HTTP request, plus the state Synapse keeps on its request object.

    Attributes set per request are assigned in `__init__`; the rest start as
    the class-level defaults below, which costs nothing until one is changed.
    """

    shallow = False  # Werkzeug's: reading the body is allowed
    #: the name metrics and logs use for the handler
    servlet_name = "unknown"
    #: the mount prefix that led here (the raw path below it is `postpath`)
    prepath = ""
    #: the status the handler asked for (`setResponseCode`, `respond_with_*`)
    code = 200
    #: what `respond_with_*` produced, if a handler used them
    response: Response | None = None
    #: what `write()` buffered, and whether `finish()` was called
    _written: list[bytes] | None = None
    handler_finished = False
    #: the status actually sent, for logs and metrics (set once, as it goes out)
    response_code: int | None = None
    #: headers a handler set on the request (`setHeader`, `set_cors_headers`)
    response_headers: list[Header] | None = None
    #: the disconnect/cancellation state while a cancellable handler runs
    cancel_scope: CancelScope | None = None
    #: who made the request, set by auth code; `str()` of it goes in the access log
    requester: object | None = None
    #: each hook's per-request state, keyed by the hook (a slot of its own,
    #: so no hook needs a field here); a fresh dict when the site has hooks
    hook_state: dict[object, Any] | None = None
    processing_end: float | None = None
    _start_cpu: tuple[float, float] | None = None
    _cpu_used: tuple[float, float] | None = None
    _body: bytes | None = None
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

        Measured once, at the first call (the hooks ask when the response is
        done: the access log and the metrics then share one `getrusage`), on
        the serving thread: under gevent it includes whatever other greenlets
        ran meanwhile.
        """
        if self._cpu_used is None:
            if self._start_cpu is None:
                return 0.0, 0.0
            user, system = _cpu_times()
            self._cpu_used = (user - self._start_cpu[0], system - self._start_cpu[1])
        return self._cpu_used

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

    # -- query and body ------------------------------------------------------

    @cached_property
    def args(self) -> dict[bytes, list[bytes]]:  # type: ignore[override]
        """The query parameters as Synapse (Twisted) has them: percent-decoded
        bytes, keyed by bytes, blank values kept. Decoding is left to the
        `parse_*` helpers, which refuse what is not valid in their encoding.
        For Werkzeug's str `MultiDict`, see `query_args`."""
        # latin-1 maps each byte to one character and back: percent-escapes and
        # raw bytes alike come out as the bytes they stand for.
        args: dict[bytes, list[bytes]] = {}
        text = self.query_string.decode("latin-1")
        for key, value in parse_qsl(text, keep_blank_values=True, encoding="latin-1"):
            args.setdefault(key.encode("latin-1"), []).append(value.encode("latin-1"))
        return args

    @cached_property
    def query_args(self) -> MultiDict[str, str]:
        """The query parameters as text; not valid UTF-8 (raw or %-encoded) is a 400.

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

    @cached_property
    def content(self) -> io.BytesIO:
        """Twisted's `request.content`: the body as a readable file (see `read_body`)."""
        return io.BytesIO(read_body(self))

    # -- Synapse's request API -----------------------------------------------

    def add_response_headers(self, headers: Iterable[Header]) -> None:
        """Add headers to whatever response goes out (values made header-safe)."""
        if self.response_headers is None:
            self.response_headers = []
        self.response_headers.extend(safe_header(name, value) for name, value in headers)

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


def read_body(request: SynapseRequest) -> bytes:
    """The whole request body, within `max_request_body_size` (else 413 `M_TOO_LARGE`).

    A declared Content-Length over the limit was refused before any of the
    body was read. A body of unknown length (chunked) is read up to the limit;
    Werkzeug then stops without saying whether more was coming, so one more
    byte is asked of the server's stream. A client that sends its body too
    slowly gets a 408 (see `ServerConfig.body_read_timeout`). Read once;
    later calls return the same bytes.
    """
    if request._body is not None:
        return request._body
    limit = request.config.max_request_body_size
    try:
        data = runtime.read_within_deadline(request)
    except RequestEntityTooLarge:
        raise RequestTooLargeError(limit) from None
    except ClientDisconnected as exc:
        if isinstance(exc.__context__, TimeoutError):
            raise SynapseError(
                HTTPStatus.REQUEST_TIMEOUT, "Timed out reading the request body", Codes.UNKNOWN
            ) from None
        raise
    unknown_length = not request.environ.get("CONTENT_LENGTH")
    if unknown_length and len(data) >= limit and request.environ["wsgi.input"].read(1):
        raise RequestTooLargeError(limit)
    request._body = data
    return data
