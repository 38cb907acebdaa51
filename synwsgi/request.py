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

from ._internal import runtime
from ._internal.compat import SynapseRequestCompat
from ._internal.connection import client_socket
from ._internal.headers import Header, safe_header
from ._internal.jsonbody import parse_json_body
from ._internal.paths import raw_path_from_environ
from ._internal.query import QueryArgs
from .cancellation import current_scope
from .config import DEFAULT_CONFIG, ServerConfig
from .errors import Codes, RequestTooLargeError, SynapseError

if TYPE_CHECKING:
    import socket

    from _typeshed.wsgi import WSGIEnvironment

    from .body import ResponseBody
    from .cancellation import CancelScope
    from .dispatch import Dispatch
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


class RequestMetricsView:
    """Synapse's `request.request_metrics`, read-only: what ported code reads of it."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name


def _latin1_to_text(value: str) -> str:
    return value.encode("latin-1").decode("utf-8", "replace")


class SynapseRequest(SynapseRequestCompat, Request):
    """One HTTP request, plus the state Synapse keeps on its request object.

    The `Site` owns the pipeline's state on the request and writes each piece
    once, in order: the effective `config` and the mount (constructor), the
    `dispatch` (what routing found), the `cancel_scope`, the hook state and
    the status sent. Everything else reads it: `servlet_name`, `route` and
    `request_metrics.name` are views onto the dispatch, `response_code` onto
    the status. The handler's own writers are Synapse's: `setResponseCode`,
    `setHeader`, `write`/`finish` and the `respond_with_*` helpers.

    Attributes set per request are assigned in `__init__`; the rest start as
    the class-level defaults below, which costs nothing until one is changed.
    """

    shallow = False  # Werkzeug's: reading the body is allowed
    #: what routing found (set once by the `Site`); None until then
    dispatch: Dispatch | None = None
    #: the path parameters routing extracted (unquoted), passed to the handler
    path_args: dict[str, Any] | None = None
    #: the status: what the handler asked for (`setResponseCode`), then the one sent
    code = 200
    #: whether the status line went out (then `code` is the status sent); set by the `Site`
    status_sent = False
    #: what `respond_with_*` produced, if a handler used them
    response: Response | None = None
    #: what `write()` buffered, and whether `finish()` was called
    _written: list[bytes] | None = None
    handler_finished = False
    #: headers a handler set on the request (`setHeader`, `set_cors_headers`)
    response_headers: list[Header] | None = None
    #: the disconnect/cancellation state of a `@cancellable` handler (or of a
    #: slow one whose client left), set by the `Site`
    cancel_scope: CancelScope | None = None
    #: who made the request, set by auth code (Synapse's `request.requester`);
    #: `str()` of it goes in the access log
    requester: object | None = None
    #: each hook's per-request state, keyed by the hook (a slot of its own,
    #: so no hook needs a field here); a fresh dict when the site has hooks
    hook_state: dict[object, Any] | None = None
    #: when the response was ready to go (`perf_counter`), for the hooks
    processing_end: float | None = None
    _start_cpu: tuple[float, float] | None = None
    _cpu_used: tuple[float, float] | None = None
    _body: bytes | None = None

    def __init__(
        self,
        environ: WSGIEnvironment,
        raw_path: str | None = None,
        request_id: str | None = None,
        config: ServerConfig = DEFAULT_CONFIG,
        prepath: str = "",
    ) -> None:
        # Werkzeug's __init__ is skipped on purpose: see the module docstring.
        self.environ = environ
        self.method = environ.get("REQUEST_METHOD", "GET").upper()
        #: the percent-encoded path routing matches against
        self.raw_path = raw_path if raw_path is not None else raw_path_from_environ(environ)
        #: the mount prefix that led here (the raw path below it is `postpath`)
        self.prepath = prepath
        #: `GET-17`; tags every log record of this request
        self.request_id = request_id or next_request_id(self.method)
        #: the effective config: the mounted resource's, else the site's
        self.config = config
        self.max_content_length = config.max_request_body_size
        self.start_time = time.perf_counter()

    @cached_property
    def client_socket(self) -> socket.socket | None:
        """The client's connection, when the server exposes it (`_internal.connection`).

        Looked up on first read rather than when the request is built: that
        takes up to three environ lookups, and most requests never need it
        (a 404, a fast handler). The runtime asks for it for a `@cancellable`
        handler, a slow one, and to read a body within its deadline.
        """
        return client_socket(self.environ)

    # -- views onto the dispatch and the status ------------------------------

    @cached_property
    def postpath(self) -> str:
        """The raw path below the mount prefix (Twisted's `postpath`, as one string)."""
        return self.raw_path[len(self.prepath) :]

    @property
    def servlet_name(self) -> str:
        """The name metrics and logs use for the handler (Synapse's servlet class name)."""
        dispatch = self.dispatch
        return dispatch.servlet_name if dispatch is not None else "unknown"

    @property
    def route(self) -> str | None:
        """The pattern of the servlet that matched, if a router found one."""
        dispatch = self.dispatch
        return dispatch.route if dispatch is not None else None

    @property
    def request_metrics(self) -> RequestMetricsView:
        """Synapse's `request.request_metrics`, as far as servlets read it (its ``name``)."""
        return RequestMetricsView(self.servlet_name)

    @property
    def response_code(self) -> int | None:
        """The status sent, once the status line went out (None before)."""
        return self.code if self.status_sent else None

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
    def args(self) -> QueryArgs:
        """The query parameters: Werkzeug's `MultiDict[str, str]`, plus Twisted's bytes keys.

        Code written for Werkzeug reads `request.args["q"]` / `.getlist("q")`
        / `request.values` as usual (text, undecodable bytes replaced, as
        Werkzeug does). Ported Synapse code indexes with bytes and gets
        Twisted's answer, every value as raw bytes: `request.args[b"q"]` is
        `[b"..."]`, `b"q" in request.args` works, and the `parse_*` helpers
        decode strictly from those bytes (see `synwsgi.servlet`).
        """
        return QueryArgs(self.query_string)

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

    # -- the body: every way to read it applies the same limit, deadline and JSON

    def get_data(  # type: ignore[override]
        self, cache: bool = True, as_text: bool = False, parse_form_data: bool = False
    ) -> bytes | str:
        """Werkzeug's `get_data`, through `read_body`: the body limit (413) and the
        slow-client deadline (408) hold however the body is read."""
        data = read_body(self)
        return data.decode("utf-8", "replace") if as_text else data

    def get_json(self, force: bool = False, silent: bool = False, cache: bool = True) -> Any:
        """Werkzeug's `get_json` with Synapse's strict JSON (no NaN, no lone
        surrogates, bounded nesting): 400 `M_NOT_JSON` for a body that is not JSON."""
        if not (force or self.is_json):
            return None if silent else self.on_json_loading_failed(None)
        try:
            return parse_json_body(read_body(self))
        except SynapseError:
            if silent:
                return None
            raise

    def read_raw_body(self) -> bytes:
        """The body as Werkzeug reads it (within `max_content_length`), with no
        deadline and uncached: `read_body`'s building block, not for handlers."""
        return Request.get_data(self, cache=False)

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
        scope = current_scope.get() or self.cancel_scope
        if scope is None:
            return False
        scope.raise_if_cancelled()
        return scope.disconnected

    def unread_chunked_body(self) -> bool:
        """Whether a chunked (unknown-length) body came and nobody read it through `read_body`.

        The server would read and discard all of it before the next request
        on the connection; Synapse drops the connection instead.
        """
        return self._body is None and "chunked" in self.environ.get("HTTP_TRANSFER_ENCODING", "").lower()

    def respond(self, response: Response) -> None:
        """What `respond_with_*` answer with, sent when the handler returns (Synapse's spelling)."""
        self.response = response

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
