"""`Site`: the WSGI application, and the life of a request, top to bottom.

`Site.serve` is the pipeline (and `site.wsgi_app` until middleware wraps
it); every step is one call into the one module that does it:

1. `Site.__call__` runs it in a copy of the context the `Site` was built in
   (worker-level context variables visible, nothing leaking between
   requests); the body is later pulled and closed in the request's context;
2. the mount for the raw path (`paths`), OPTIONS and Twisted-style children
   are resolved first, so the request (`request_class`) is built with its
   *effective* config, the mounted resource's or the site's; `hooks` are told;
3. the declared body size (413) and multipart (415) are checked, then the
   resource's lookup returns the handler (`Dispatch`) and its path
   arguments, or raises 404/405; the `Site` stores them on the request;
4. `runtime.run_handler`: the handler runs, under cancellation when it is
   `@cancellable` (gevent greenlet kill, or a thread's flag);
5. `results.to_response`: the one conversion of whatever it returned;
6. `errormap.render_error`: any failure in 2-5, rendered as JSON or HTML;
7. what goes out is built anew: the CORS/CORP/framing/cache headers
   (`policy`) and the handler's own, in a new list; HEAD/204/304 lose the
   body. The handler's response is never edited, so one may be shared by
   every request;
8. `start_response`, and a `body.ResponseBody` whose `close()` tells the
   hooks that the request finished, exactly once.

The `Site` is the one writer of the pipeline's state on the request (the
dispatch, the path arguments, the cancel scope, hook state, the status sent).
One `try` covers all of it, the request class's constructor included: no
exception of a handler, a hook or synwsgi reaches the server before the
first byte. After it, a failing body is logged once and the connection
dropped (`errors.ResponseAborted`).
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
from typing import TYPE_CHECKING

from werkzeug.middleware.proxy_fix import ProxyFix

from . import policy
from ._internal import results, runtime
from ._internal.connection import ask_server_to_close, end_connection
from ._internal.errormap import render_error
from ._internal.headers import Header
from ._internal.paths import raw_path_from_environ, unquote_strict
from .body import ResponseBody, rechunk, split
from .cancellation import CancelledError, CancelScope
from .config import DEFAULT_CONFIG, ServerConfig
from .dispatch import UNRECOGNISED, Dispatch
from .errors import (
    Codes,
    MethodNotAllowedError,
    RequestTooLargeError,
    SynapseError,
    UnrecognizedRequestError,
)
from .jsonenc import encode_canonical_json
from .observability.hooks import HookRunner, RequestHooks, run_hooks
from .request import SynapseRequest, current_request_var, next_request_id
from .resources import Handler, Resource
from .responses import Response, close_body, status_line

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

logger = logging.getLogger(__name__)


def _normalise_prefix(prefix: str) -> str:
    prefix = "/" + prefix.strip("/")
    return "" if prefix == "/" else prefix


class Site:
    """A WSGI application serving `resources`, a map of path prefix -> resource.

    `request_class` builds each request (a subclass of `SynapseRequest`, for
    applications that add their own state or spellings). `wsgi_app` is the
    application proper, which middleware may wrap as in Flask
    (`site.wsgi_app = Middleware(site.wsgi_app)`); calling the `Site` runs it
    in a copy of the context the `Site` was built in.
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
        # Context variables set before the app was built (at import, in
        # gunicorn's post_fork, by a tracing or database library) are seen by
        # every request; what a request sets is seen by none other.
        self._worker_context = contextvars.copy_context()
        #: the WSGI application proper: `serve`, to be wrapped by middleware
        #: (`site.wsgi_app = Middleware(site.wsgi_app)`, as in Flask)
        self.wsgi_app: WSGIApplication = self.serve
        if self.config.behind_proxy:
            # Behind one reverse proxy, trust its X-Forwarded-For/-Proto (and nothing more).
            self.wsgi_app = ProxyFix(self.wsgi_app, x_for=1, x_proto=1)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        return self._worker_context.copy().run(self.wsgi_app, environ, start_response)

    # -- one request ----------------------------------------------------------

    def serve(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """The life of one request (see the module docstring): a WSGI application.

        `site.wsgi_app` is this method until middleware wraps it.
        """
        if runtime.hub_sharing is not None:  # gevent: one keep-alive connection cannot hold the worker
            runtime.hub_sharing()
        hooks = self._hooks
        request: SynapseRequest | None = None
        resource: Resource = _UNRECOGNIZED
        body: Iterable[bytes] | None = None
        try:
            try:
                raw_path = raw_path_from_environ(environ)
                prefix, resource = self._resolve(environ, raw_path)
                request_id = self._request_id(environ) if self._request_id_environ_key else None
                config = resource.config or self.config
                request = self.request_class(environ, raw_path, request_id, config, prefix)
                current_request_var.set(request)
                if hooks is not None:
                    self._started(request)
                # Before routing: a declared body over the (effective) limit, multipart.
                declared_length = environ.get("CONTENT_LENGTH")
                if declared_length:
                    _check_body_size(declared_length, request.config.max_request_body_size)
                if "CONTENT_TYPE" in environ and _is_multipart(environ["CONTENT_TYPE"]):
                    handler, args = _multipart_handler(request, resource)
                else:
                    handler, args = resource.get_handler(request)  # 404/405 raise
                if isinstance(handler, Dispatch):
                    dispatch = handler
                else:  # a bare callback, known by its resource's class name
                    dispatch = Dispatch(handler, type(resource).__name__)
                request.dispatch, request.path_args = dispatch, args
                if hooks is not None and hooks.handler:
                    run_hooks(hooks.handler, request)
                if dispatch.cancellable:
                    request.cancel_scope = CancelScope()
                result, gone = runtime.run_handler(
                    request, results.call, dispatch.callback, request.path_args
                )
                if gone is not None:
                    request.cancel_scope = gone
                response = results.to_response(request, result, resource.result_kind, resource.canonical_json)
                pieces = None if type(response.body) is bytes else self._prime(request, response)
            except (Exception, CancelledError) as exc:  # noqa: BLE001 - every failure gets a response
                if request is None:  # the path or the request class failed: answer with a plain request
                    request = SynapseRequest(environ, None, None, self.config)
                    current_request_var.set(request)
                    if hooks is not None:
                        self._started(request)
                if request.dispatch is None and isinstance(exc, UnrecognizedRequestError):
                    request.dispatch = _NOT_FOUND
                    if isinstance(exc, MethodNotAllowedError):
                        exc = self._with_options(request, exc)
                response = render_error(request, exc, resource.ERROR_TEMPLATE)
                pieces = None
            # What goes out, built anew: the handler's response is never edited
            # (it may be shared by every request). The policy's headers, then
            # the handler's `setHeader`s; HEAD, 204 and 304 without a body.
            headers = policy.apply(
                response.headers, response.kind, resource.result_kind, request.config, request.raw_path
            )
            if request.response_headers:
                headers = policy.merge(headers, request.response_headers)
            status = response.status
            payload = response.body
            if request.method == "HEAD" or status in _NO_BODY:
                payload = _without_body(payload)
                if status in _NO_BODY:
                    headers = _without_body_headers(headers, status)
            body = self._body(request, status, payload, pieces, start_response)
            if hooks is not None:
                request.processing_end = time.perf_counter()
                if hooks.response:  # what goes out, as a value of its own (they may add headers)
                    run_hooks(hooks.response, request, Response(status, headers, payload, response.kind))
            request.code = status
            request.status_sent = True
            start_response(status_line(status), headers)
            return body
        except Exception as exc:  # noqa: BLE001 - synwsgi failed, or the server refused our headers
            if request is None:
                request = SynapseRequest(environ, None, None, self.config)
            return self._fail(request, exc, body, start_response)

    def _started(self, request: SynapseRequest) -> None:
        """The hooks' start: their state, CPU accounting, `request_started`."""
        hooks = self._hooks
        assert hooks is not None
        request.hook_state = {}
        request.start_cpu_accounting()
        if hooks.started:
            run_hooks(hooks.started, request)

    def _request_id(self, environ: WSGIEnvironment) -> str | None:
        """`<METHOD>-<value>` when the request carries `config.request_id_header`."""
        header_id = environ.get(self._request_id_environ_key)  # type: ignore[arg-type]
        if not header_id:
            return None
        return next_request_id(environ.get("REQUEST_METHOD", "GET").upper(), header_id)

    def _resolve(self, environ: WSGIEnvironment, path: str) -> tuple[str, Resource]:
        """The mount prefix and the resource that answers the request for `path`.

        OPTIONS below an `OptionsResource` is answered by it (methods are
        case-sensitive: RFC 9110); Twisted-style children (`putChild`) are
        walked below their parent's prefix.
        """
        if self._options_mounts and environ.get("REQUEST_METHOD") == "OPTIONS":
            options = self._options_resource(path)
            if options is not None:
                return "", options
        prefix, mounted = self._mount(path)
        if mounted is None:
            return prefix, _UNRECOGNIZED
        if mounted.children:
            mounted, rest = _walk_children(mounted, path[len(prefix) :])
        elif mounted.isLeaf:
            return prefix, mounted
        else:
            rest = path[len(prefix) :]
        if not (mounted.isLeaf or rest in ("", "/")):
            return prefix, _UNRECOGNIZED
        return prefix, mounted

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

    def _with_options(self, request: SynapseRequest, exc: MethodNotAllowedError) -> MethodNotAllowedError:
        """A 405 under an `OptionsResource` lists OPTIONS too."""
        if "OPTIONS" not in exc.allowed and self._options_resource(request.raw_path) is not None:
            return MethodNotAllowedError([*exc.allowed, "OPTIONS"])
        return exc

    # -- sending ----------------------------------------------------------------

    def _prime(self, request: SynapseRequest, response: Response) -> Iterator[bytes] | None:
        """Pull the first piece of a streamed body while an error can still be sent.

        None for a body already in memory (`serve` does not even ask), or one
        that is not to be sent.
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
        status: int,
        payload: bytes | Iterable[bytes],
        pieces: Iterator[bytes] | None,
        start_response: StartResponse,
    ) -> Iterable[bytes]:
        # A 408 or 413 leaves (part of) the body unread, and so does any answer
        # to a chunked upload nobody read: end the connection after it rather
        # than let the server read and discard a body of any length.
        close_connection = status in _BODY_LEFT_UNREAD or (
            "HTTP_TRANSFER_ENCODING" in request.environ and request.unread_chunked_body()
        )
        if close_connection:
            ask_server_to_close(request.environ, start_response)
        watched = self._hooks is not None or close_connection
        source: object = None
        if pieces is None:
            data = payload
            assert isinstance(data, bytes)
            if not watched and len(data) <= request.config.max_chunk_size:
                return [data]  # nothing to do when it closes: the common case, kept cheap
            pieces = split(data, request.config.max_chunk_size)
        else:
            source = payload
        on_close = functools.partial(self._request_finished, request, close_connection) if watched else None
        return ResponseBody(pieces, source, on_close, contextvars.copy_context())

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
        request.code = HTTPStatus.INTERNAL_SERVER_ERROR
        request.status_sent = True
        start_response(status_line(HTTPStatus.INTERNAL_SERVER_ERROR), headers, sys.exc_info())
        return [data]


def _is_multipart(content_type: str) -> bool:
    """multipart/form-data is served only to handlers that ask for it (`accepts_multipart`)."""
    return content_type[:19].lower() == "multipart/form-data"


def _multipart_handler(request: SynapseRequest, resource: Resource) -> Handler:
    """Synapse refuses multipart/form-data with 415 before routing (GHSA-rfq8-j7rh-8hf2),
    but for a handler that opts in (`accepts_multipart`)."""
    try:
        handler, args = resource.get_handler(request)
    except UnrecognizedRequestError:
        raise UnrecognizedRequestError(code=HTTPStatus.UNSUPPORTED_MEDIA_TYPE) from None
    if not getattr(getattr(handler, "callback", handler), "accepts_multipart", False):
        raise UnrecognizedRequestError(code=HTTPStatus.UNSUPPORTED_MEDIA_TYPE)
    return handler, args


def _check_body_size(declared: str, limit: int) -> None:
    """A declared body over the limit is refused before any of it is read."""
    # Two Content-Length headers arrive joined ("5, 5"): not digits, so a 400.
    if not (declared.isascii() and declared.isdigit()):
        raise SynapseError(HTTPStatus.BAD_REQUEST, "Invalid Content-Length header", Codes.UNKNOWN)
    if int(declared) > limit:
        raise RequestTooLargeError(limit)


def _walk_children(resource: Resource, rest: str) -> tuple[Resource, str]:
    """Twisted's traversal: down `putChild` children by unquoted path segment,
    until a leaf or a segment no child has."""
    while resource.children and rest.startswith("/"):
        end = rest.find("/", 1)
        segment = rest[1:end] if end > 0 else rest[1:]
        child = resource.children.get(unquote_strict(segment))
        if child is None:
            break
        resource, rest = child, (rest[end:] if end > 0 else "")
        if resource.isLeaf:
            break
    return resource, rest


def _no_handler(request: SynapseRequest) -> None:
    raise UnrecognizedRequestError()


#: What a request nothing serves is known by (Synapse's name in metrics and logs).
_NOT_FOUND = Dispatch(_no_handler, UNRECOGNISED)


def _first_segment(path: str) -> str:
    """`/_matrix` of `/_matrix/client/...`: the key mounts are indexed by."""
    end = path.find("/", 1)
    return path[:end] if end > 0 else path


def _is_under(path: str, prefix: str) -> bool:
    """Whether `prefix` is `path` or one of its leading segments."""
    return path.startswith(prefix) and (len(path) == len(prefix) or path[len(prefix)] == "/")


def _without_body(payload: bytes | Iterable[bytes]) -> bytes:
    """No body, on every server (Werkzeug's dev server would write whatever it
    is given onto the wire); a body iterator is closed, as PEP 3333 asks."""
    if not isinstance(payload, bytes):
        close_body(payload)
    return b""


def _without_body_headers(headers: list[Header], status: int) -> list[Header]:
    """A 204 or 304 loses what describes a body (PEP 3333 and RFC 9110):
    Content-Type, and Content-Length but for a 204's Synapse-style `0`."""
    keep = ("content-length", "0") if status == HTTPStatus.NO_CONTENT else None
    return [(k, v) for k, v in headers if k.lower() not in _BODY_HEADERS or (k.lower(), v) == keep]


# What answers a path under no mounted resource: the JSON 404.
_UNRECOGNIZED = Resource()

_BODY_HEADERS = frozenset(("content-length", "content-type"))
_NO_BODY = frozenset((int(HTTPStatus.NO_CONTENT), int(HTTPStatus.NOT_MODIFIED)))
_BODY_LEFT_UNREAD = frozenset((int(HTTPStatus.REQUEST_TIMEOUT), int(HTTPStatus.REQUEST_ENTITY_TOO_LARGE)))
