"""`Site`: the WSGI application. Mounts resources and is the last error boundary.

One request, start to end:

1. a fresh `contextvars.Context` (nothing of one request leaks into the next,
   whichever worker type reuses the thread or greenlet), also entered again
   for each piece of a streamed body;
2. the raw path picks a resource (the longest mounted prefix, on segment
   boundaries); OPTIONS under an `OptionsResource` is answered there;
3. the resource returns a response (errors already converted to one); a
   streamed body is primed so a failure before the first byte is still a
   proper error response;
4. HEAD loses its body, the handler's extra headers are merged, and the body
   goes out as a `ResponseBody` whose `close()` finishes the request's log line.
"""

from __future__ import annotations

import contextvars
import functools
import itertools
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from werkzeug.middleware.proxy_fix import ProxyFix

from .body import ResponseBody, rechunk, split
from .cancellation import CancelledError
from .config import DEFAULT_CONFIG, ServerConfig
from .connection import end_connection
from .errors import Codes, RequestTooLargeError, SynapseError
from .hooks import RequestHooks
from .request import SynapseRequest, current_request_var, next_request_id, raw_path_from_environ
from .resources import Resource
from .responses import Response, close_body, merge_headers, return_json_error, status_line

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

logger = logging.getLogger(__name__)


def _normalise_prefix(prefix: str) -> str:
    prefix = "/" + prefix.strip("/")
    return "" if prefix == "/" else prefix


class Site:
    """A WSGI application serving `resources`, a map of path prefix -> resource."""

    def __init__(
        self,
        resources: Mapping[str, Resource],
        config: ServerConfig | None = None,
        hooks: Iterable[RequestHooks] = (),
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
        # Behind one reverse proxy, trust its X-Forwarded-For/-Proto (and nothing more).
        self._proxy_fix = ProxyFix(self._serve, x_for=1, x_proto=1) if self.config.behind_proxy else None
        self._request_id_environ_key = (
            "HTTP_" + self.config.request_id_header.upper().replace("-", "_")
            if self.config.request_id_header
            else None
        )

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if self._proxy_fix is not None:
            return self._proxy_fix(environ, start_response)
        return self._serve(environ, start_response)

    def _serve(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        context = contextvars.Context()
        return context.run(self._handle, environ, start_response, context)

    # -- one request --------------------------------------------------------

    def _handle(
        self, environ: WSGIEnvironment, start_response: StartResponse, context: contextvars.Context
    ) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET").upper()
        header_id = environ.get(self._request_id_environ_key) if self._request_id_environ_key else None
        request = SynapseRequest(
            environ, raw_path_from_environ(environ), next_request_id(method, header_id), self.config
        )
        current_request_var.set(request)
        if self.hooks:
            request.hooks = self.hooks
            request.hook_state = {}
            request.start_cpu_accounting()
            for hook in self.hooks:
                hook.request_started(request)
        try:
            response = self._dispatch(request)
        except (Exception, CancelledError) as exc:  # noqa: BLE001 - the last boundary
            response = return_json_error(request, exc)
        return self._send(request, response, start_response, context)

    def _dispatch(self, request: SynapseRequest) -> WSGIApplication:
        declared_length = request.environ.get("CONTENT_LENGTH")
        if declared_length:
            self._check_body_size(declared_length)
        path = request.raw_path
        if request.method == "OPTIONS":
            for prefix, resource in self._options_mounts:
                if _is_under(path, prefix):
                    return resource.render(request)
        prefix, mounted = self._resolve(path)
        if prefix:
            request.prepath = prefix
            request.postpath = path[len(prefix) :]
        if mounted is not None and (mounted.isLeaf or request.postpath in ("", "/")):
            return mounted.render(request)
        return _UNRECOGNIZED.render(request)

    def _resolve(self, path: str) -> tuple[str, Resource | None]:
        """The longest mounted prefix of `path` (on segment boundaries) and its resource."""
        for prefix, resource in self._mounts.get(_first_segment(path), ()):
            if _is_under(path, prefix):
                return prefix, resource
        return "", self._root

    def _check_body_size(self, declared: str) -> None:
        if not (declared.isascii() and declared.isdigit()):
            raise SynapseError(HTTPStatus.BAD_REQUEST, "Invalid Content-Length header", Codes.UNKNOWN)
        if int(declared) > self.config.max_request_body_size:
            raise RequestTooLargeError(self.config.max_request_body_size)

    # -- sending --------------------------------------------------------------

    def _send(
        self,
        request: SynapseRequest,
        response: WSGIApplication,
        start_response: StartResponse,
        context: contextvars.Context,
    ) -> Iterable[bytes]:
        if not isinstance(response, Response):
            response = self._run_wsgi_response(request, response)
        if request.response_headers:
            response.headers = merge_headers(response.headers, request.response_headers)
        body = response.body
        if request.method == "HEAD":
            close_body(body)
            body = b""
        source: object = None
        pieces: Iterator[bytes] | None = None
        if not isinstance(body, bytes):
            primed = self._prime(request, body)
            if isinstance(primed, Response):
                response, body = primed, primed.body
            else:
                pieces, source = primed, body
        status = request.response_code = response.status
        hooks = self.hooks
        if hooks:
            request.processing_end = time.perf_counter()
            for hook in hooks:
                hook.response_started(request, response)
        # A 408 or 413 leaves (part of) the body unread: end the connection after it.
        close_connection = status in _BODY_LEFT_UNREAD
        start_response(status_line(status), response.headers)
        if pieces is None:
            assert isinstance(body, bytes)
            if not hooks and not close_connection and len(body) <= self.config.max_chunk_size:
                return [body]  # nothing to do when it closes: the common case, kept cheap
            pieces = split(body, self.config.max_chunk_size)
        on_close = None
        if hooks or close_connection:
            on_close = functools.partial(self._request_finished, request, close_connection)
        return ResponseBody(pieces, source, on_close, context)

    def _prime(self, request: SynapseRequest, body: Iterable[bytes]) -> Iterator[bytes] | Response:
        """Pull the first piece of a streamed body while an error can still be sent.

        Returns the pieces to send, or the error response that replaces them.
        """
        pieces = rechunk(body, self.config.min_chunk_size, self.config.max_chunk_size)
        try:
            first = next(pieces, None)
        except (Exception, CancelledError) as exc:  # noqa: BLE001 - becomes an error response
            close_body(body)
            return return_json_error(request, exc)
        return pieces if first is None else itertools.chain((first,), pieces)

    def _run_wsgi_response(self, request: SynapseRequest, app: WSGIApplication) -> Response:
        """Turn any WSGI application (a Werkzeug `Response`, say) into a `Response`."""
        captured: list[Any] = []

        def capture(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Callable[[bytes], object]:
            captured[:] = [status, headers]
            return _no_write

        app_iter = app(request.environ, capture)
        status, headers = captured
        return Response(int(status.split(" ", 1)[0]), list(headers), app_iter)

    def _request_finished(self, request: SynapseRequest, close_connection: bool, body: ResponseBody) -> None:
        for hook in self.hooks:
            try:
                hook.request_finished(request, body)
            except Exception:  # one hook must not stop the others
                logger.exception("request hook %r failed", hook)
        if close_connection and request.client_socket is not None:
            end_connection(request.client_socket)


def _first_segment(path: str) -> str:
    """`/_matrix` of `/_matrix/client/...`: the key mounts are indexed by."""
    end = path.find("/", 1)
    return path[:end] if end > 0 else path


def _is_under(path: str, prefix: str) -> bool:
    """Whether `prefix` is `path` or one of its leading segments."""
    return path.startswith(prefix) and (len(path) == len(prefix) or path[len(prefix)] == "/")


# What answers a path under no mounted resource: the JSON 404.
_UNRECOGNIZED = Resource()

_BODY_LEFT_UNREAD = frozenset((int(HTTPStatus.REQUEST_TIMEOUT), int(HTTPStatus.REQUEST_ENTITY_TOO_LARGE)))


def _no_write(data: bytes) -> object:
    raise RuntimeError("synwsgi does not support the write() callable")
