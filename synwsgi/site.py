"""`Site`: the WSGI application, and the life of a request, top to bottom.

`Site.wsgi_app` is the pipeline; every step is one call into the one module
that does it:

1. a fresh `contextvars.Context` per request (`Site.__call__`), also entered
   for each piece of a streamed body: nothing leaks between requests on any
   worker type;
2. `request.SynapseRequest`: the request, parsed lazily; `hooks` are told;
3. `Site.resolve`: the mounted resource for the raw path (`paths`), the
   OPTIONS answer, a declared body over the limit (413), 404/405;
4. `runtime.run_handler`: the handler runs, under cancellation when it is
   `@cancellable` (gevent greenlet kill, or a thread's flag);
5. `results.to_response`: the one conversion of whatever it returned;
6. `errormap.render_error`: any failure in 3-5, rendered as JSON or HTML;
7. `policy`: the CORS/CORP/framing/cache headers for the response's kind,
   applied once, then the handler's own headers; HEAD/204/304 lose the body;
8. `start_response`, and a `body.ResponseBody` whose `close()` tells the
   hooks that the request finished, exactly once.

One `try` covers all of it: no exception of a handler, a hook or synwsgi
reaches the server before the first byte. After it, a failing body is
logged once and the connection dropped (`errors.ResponseAborted`).
"""

from __future__ import annotations

import contextvars
import functools
import itertools
import logging
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from werkzeug.middleware.proxy_fix import ProxyFix

from . import policy, results, runtime
from .body import ResponseBody, rechunk, split
from .cancellation import CancelledError
from .config import DEFAULT_CONFIG, ServerConfig
from .connection import ask_server_to_close, end_connection
from .errormap import render_error
from .errors import (
    Codes,
    MethodNotAllowedError,
    RequestTooLargeError,
    SynapseError,
    UnrecognizedRequestError,
)
from .hooks import HookRunner, RequestHooks, run_hooks
from .jsonenc import encode_canonical_json
from .request import SynapseRequest, current_request_var, next_request_id
from .resources import Resource
from .responses import Response, close_body, status_line

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

logger = logging.getLogger(__name__)


def _normalise_prefix(prefix: str) -> str:
    prefix = "/" + prefix.strip("/")
    return "" if prefix == "/" else prefix


class Site:
    """A WSGI application serving `resources`, a map of path prefix -> resource.

    `request_class` builds each request (a subclass of `SynapseRequest`, for
    applications that add their own state or spellings).
    """

    def __init__(
        self,
        resources: Mapping[str, Resource],
        config: ServerConfig | None = None,
        hooks: Iterable[RequestHooks] = (),
        request_class: type[SynapseRequest] = SynapseRequest,
    ) -> None:
        self.config = config or DEFAULT_CONFIG
        mounts = {_normalise_prefix(prefix): resource for prefix, resource in resources.items()}
        # By first path segment ("/_matrix"), longest prefix first; "" is the root.
        self._mounts: dict[str, list[tuple[str, Resource]]] = {}
        for prefix, resource in sorted(mounts.items(), key=lambda item: -len(item[0])):
            if prefix:
                self._mounts.setdefault(_first_segment(prefix), []).append((prefix, resource))
        self._root = mounts.get("")
        # Shortest first: the outermost OptionsResource answers OPTIONS below it.
        self._options_mounts = sorted(
            ((p, r) for p, r in mounts.items() if r.answers_options), key=lambda item: len(item[0])
        )
        self.hooks = tuple(hooks)
        self._hooks = HookRunner(self.hooks) if self.hooks else None
        self.request_class = request_class
        self._request_id_environ_key = (
            "HTTP_" + self.config.request_id_header.upper().replace("-", "_")
            if self.config.request_id_header
            else None
        )
        # Behind one reverse proxy, trust its X-Forwarded-For/-Proto (and nothing more).
        self._proxy_fix = (
            ProxyFix(self._in_fresh_context, x_for=1, x_proto=1) if self.config.behind_proxy else None
        )

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if self._proxy_fix is not None:
            return self._proxy_fix(environ, start_response)
        context = contextvars.Context()
        return context.run(self.wsgi_app, environ, start_response, context)

    def _in_fresh_context(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        context = contextvars.Context()
        return context.run(self.wsgi_app, environ, start_response, context)

    # -- one request ----------------------------------------------------------

    def wsgi_app(
        self, environ: WSGIEnvironment, start_response: StartResponse, context: contextvars.Context
    ) -> Iterable[bytes]:
        """The life of one request (see the module docstring)."""
        runtime.share_hub()  # under gevent: one keep-alive connection cannot hold the worker
        request = self._new_request(environ)
        current_request_var.set(request)
        hooks = self._hooks
        if hooks is not None:
            request.hook_state = {}
            request.start_cpu_accounting()
            if hooks.started:
                run_hooks(hooks.started, request)
        resource: Resource = _UNRECOGNIZED
        body: Iterable[bytes] | None = None
        try:
            try:
                resource = self.resolve(request)
                callback, kwargs = resource.get_handler(request)
                if "CONTENT_TYPE" in environ:
                    _check_content_type(environ["CONTENT_TYPE"], callback)
                if hooks is not None and hooks.handler:
                    run_hooks(hooks.handler, request)
                result = runtime.run_handler(request, results.call, callback, kwargs)
                response = results.to_response(request, result, resource.result_kind, resource.canonical_json)
                pieces = self._prime(request, response)
            except (Exception, CancelledError) as exc:  # noqa: BLE001 - every failure gets a response
                if isinstance(exc, MethodNotAllowedError):
                    exc = self._with_options(request, exc)
                response = render_error(request, exc, resource.ERROR_TEMPLATE)
                pieces = None
            if request.method == "HEAD" or response.status in _NO_BODY:
                _drop_body(response)
            headers = policy.apply(
                response.headers, response.kind, resource.result_kind, request.config, request.raw_path
            )
            if request.response_headers:
                headers = policy.merge(headers, request.response_headers)
            response.headers = headers
            body = self._body(request, response, pieces, start_response, context)
            if hooks is not None:
                request.processing_end = time.perf_counter()
                if hooks.response:
                    run_hooks(hooks.response, request, response)
            request.response_code = response.status
            start_response(status_line(response.status), response.headers)
            return body
        except Exception as exc:  # noqa: BLE001 - synwsgi failed, or the server refused our headers
            return self._fail(request, exc, body, start_response)

    def _new_request(self, environ: WSGIEnvironment) -> SynapseRequest:
        key = self._request_id_environ_key
        header_id = environ.get(key) if key else None
        if header_id:
            method = environ.get("REQUEST_METHOD", "GET").upper()
            return self.request_class(environ, None, next_request_id(method, header_id), self.config)
        return self.request_class(environ, None, None, self.config)

    def resolve(self, request: SynapseRequest) -> Resource:
        """The resource that answers `request` (mounts, OPTIONS, and a declared body too large)."""
        declared_length = request.environ.get("CONTENT_LENGTH")
        if declared_length:
            self._check_body_size(declared_length)
        path = request.raw_path
        if request.method == "OPTIONS":
            options = self._options_resource(path)
            if options is not None:
                return options
        prefix, mounted = self._mount(path)
        if prefix:
            request.prepath = prefix
            request.postpath = path[len(prefix) :]
        if mounted is None or not (mounted.isLeaf or request.postpath in ("", "/")):
            return _UNRECOGNIZED
        if mounted.config is not None:
            request.config = mounted.config
        return mounted

    def _mount(self, path: str) -> tuple[str, Resource | None]:
        """The longest mounted prefix of `path` (on segment boundaries) and its resource."""
        end = path.find("/", 1)  # `_first_segment` and `_is_under`, inlined: every request comes here
        for prefix, resource in self._mounts.get(path[:end] if end > 0 else path, ()):
            if path.startswith(prefix) and (len(path) == len(prefix) or path[len(prefix)] == "/"):
                return prefix, resource
        return "", self._root

    def _options_resource(self, path: str) -> Resource | None:
        for prefix, resource in self._options_mounts:
            if _is_under(path, prefix):
                return resource
        return None

    def _check_body_size(self, declared: str) -> None:
        # Two Content-Length headers arrive joined ("5, 5"): not digits, so a 400.
        if not (declared.isascii() and declared.isdigit()):
            raise SynapseError(HTTPStatus.BAD_REQUEST, "Invalid Content-Length header", Codes.UNKNOWN)
        if int(declared) > self.config.max_request_body_size:
            raise RequestTooLargeError(self.config.max_request_body_size)

    def _with_options(self, request: SynapseRequest, exc: MethodNotAllowedError) -> MethodNotAllowedError:
        """A 405 under an `OptionsResource` lists OPTIONS too."""
        if "OPTIONS" not in exc.allowed and self._options_resource(request.raw_path) is not None:
            return MethodNotAllowedError([*exc.allowed, "OPTIONS"])
        return exc

    # -- sending ----------------------------------------------------------------

    def _prime(self, request: SynapseRequest, response: Response) -> Iterator[bytes] | None:
        """Pull the first piece of a streamed body while an error can still be sent.

        None for a body already in memory, or one that is not to be sent.
        """
        body = response.body
        if isinstance(body, bytes) or request.method == "HEAD" or response.status in _NO_BODY:
            return None
        config = request.config
        pieces = rechunk(body, config.min_chunk_size, config.max_chunk_size)
        try:
            first = next(pieces, None)
        except BaseException:
            close_body(body)
            raise
        return iter(()) if first is None else itertools.chain((first,), pieces)

    def _body(
        self,
        request: SynapseRequest,
        response: Response,
        pieces: Iterator[bytes] | None,
        start_response: StartResponse,
        context: contextvars.Context,
    ) -> Iterable[bytes]:
        # A 408 or 413 leaves (part of) the body unread: end the connection after it.
        close_connection = response.status in _BODY_LEFT_UNREAD
        if close_connection:
            ask_server_to_close(request.environ, start_response)
        watched = self._hooks is not None or close_connection
        source: object = None
        if pieces is None:
            data = response.body
            assert isinstance(data, bytes)
            if not watched and len(data) <= request.config.max_chunk_size:
                return [data]  # nothing to do when it closes: the common case, kept cheap
            pieces = split(data, request.config.max_chunk_size)
        else:
            source = response.body
        on_close = functools.partial(self._request_finished, request, close_connection) if watched else None
        return ResponseBody(pieces, source, on_close, context)

    def _request_finished(self, request: SynapseRequest, close_connection: bool, body: ResponseBody) -> None:
        if self._hooks is not None:
            run_hooks(self._hooks.finished, request, body)
        if close_connection and request.client_socket is not None:
            end_connection(request.client_socket)

    def _fail(
        self,
        request: SynapseRequest,
        exc: Exception,
        body: Iterable[bytes] | None,
        start_response: StartResponse,
    ) -> Iterable[bytes]:
        """The last resort: synwsgi failed after the error map (a bug, or headers the server refused)."""
        logger.error("Failed to send a response to %r", request, exc_info=(type(exc), exc, exc.__traceback__))
        data = encode_canonical_json({"errcode": Codes.UNKNOWN.value, "error": "Internal server error"})
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
        # The hooks hear of the request once, whatever happened (we are in its context).
        if isinstance(body, ResponseBody):
            body.discard()
        elif self._hooks is not None:
            self._request_finished(request, False, ResponseBody(iter(())))
        request.response_code = HTTPStatus.INTERNAL_SERVER_ERROR
        start_response(status_line(HTTPStatus.INTERNAL_SERVER_ERROR), headers, sys.exc_info())
        return [data]


def _check_content_type(content_type: str, callback: Any) -> None:
    """multipart/form-data only where a handler asks for it (Synapse's GHSA-rfq8-j7rh-8hf2)."""
    if content_type[:19].lower() == "multipart/form-data" and not getattr(
        callback, "accepts_multipart", False
    ):
        raise UnrecognizedRequestError(code=HTTPStatus.UNSUPPORTED_MEDIA_TYPE)


def _first_segment(path: str) -> str:
    """`/_matrix` of `/_matrix/client/...`: the key mounts are indexed by."""
    end = path.find("/", 1)
    return path[:end] if end > 0 else path


def _is_under(path: str, prefix: str) -> bool:
    """Whether `prefix` is `path` or one of its leading segments."""
    return path.startswith(prefix) and (len(path) == len(prefix) or path[len(prefix)] == "/")


def _drop_body(response: Response) -> None:
    """HEAD, 204 and 304 responses go out without a body, on every server.

    (Werkzeug's dev server would write whatever it is given onto the wire.)
    A 204 or 304 also loses what describes a body (PEP 3333 and RFC 9110):
    Content-Type, and Content-Length but for a 204's Synapse-style `0`.
    """
    if not isinstance(response.body, bytes):
        close_body(response.body)
    response.body = b""
    status = response.status
    if status in _NO_BODY:
        keep = ("content-length", "0") if status == HTTPStatus.NO_CONTENT else None
        response.headers = [
            (k, v) for k, v in response.headers if k.lower() not in _BODY_HEADERS or (k.lower(), v) == keep
        ]


# What answers a path under no mounted resource: the JSON 404.
_UNRECOGNIZED = Resource()

_BODY_HEADERS = frozenset(("content-length", "content-type"))
_NO_BODY = frozenset((int(HTTPStatus.NO_CONTENT), int(HTTPStatus.NOT_MODIFIED)))
_BODY_LEFT_UNREAD = frozenset((int(HTTPStatus.REQUEST_TIMEOUT), int(HTTPStatus.REQUEST_ENTITY_TOO_LARGE)))
