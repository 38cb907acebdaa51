"""Resources: what a `Site` mounts, and how handlers' results become responses.

* `JsonResource` routes to servlet callbacks registered with `register_paths`
  (usually by `RestServlet.register`), and answers in canonical JSON;
* `DirectServeJsonResource` / `DirectServeHtmlResource` call `on_<METHOD>`;
* `OptionsResource`, `RootRedirect` and their mix answer CORS preflights and `/`.

Every resource turns its own failures into responses in its own format, so a
JSON API never answers with HTML and an HTML page never with JSON.
"""

from __future__ import annotations

import functools
import logging
import re
import time
from collections.abc import Callable, Iterable, Iterator
from http import HTTPStatus
from types import CoroutineType
from typing import TYPE_CHECKING, Any, ClassVar, cast

from werkzeug.wrappers import Response as WerkzeugResponse

from . import headers as h
from .body import cooperative
from .cancellation import (
    CancelledError,
    CancelScope,
    is_function_cancellable,
    run_cancellable,
)
from .config import ServerConfig
from .connection import client_gone, is_gevent_socket
from .errors import UnrecognizedRequestError
from .jsonenc import is_large, iter_encode_canonical_json
from .responses import (
    HTML_ERROR_TEMPLATE,
    Response,
    html_response,
    json_response,
    json_stream_response,
    options_response,
    redirect_response,
    return_html_error,
    return_json_error,
)
from .routing import Router

if TYPE_CHECKING:
    import jinja2
    from _typeshed.wsgi import WSGIApplication

    from .request import SynapseRequest

logger = logging.getLogger(__name__)

ServletCallback = Callable[..., Any]
PathPattern = str | re.Pattern[str]

_HANDLER_METHODS = ("GET", "PUT", "POST", "DELETE", "PATCH")


class Resource:
    """Something a `Site` mounts at a path prefix.

    `isLeaf` resources answer every path below their prefix; the others only
    the prefix itself (anything deeper is a JSON 404).
    """

    isLeaf: ClassVar[bool] = True
    #: answer OPTIONS for every path below this resource's prefix
    answers_options: ClassVar[bool] = False

    def render(self, request: SynapseRequest) -> WSGIApplication:
        request.servlet_name = "unrecognised_request_handler"
        return return_json_error(request, UnrecognizedRequestError())


def run_coroutine(coro: Any) -> Any:
    """Drive an `async def` handler to completion without an event loop.

    A WSGI worker has no loop to run: handlers may await other coroutines,
    not futures or asyncio I/O.
    """
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    coro.close()
    raise RuntimeError("async handlers may only await coroutines: a WSGI worker has no event loop")


def _call(callback: ServletCallback, request: SynapseRequest, kwargs: dict[str, Any]) -> Any:
    result = callback(request, **kwargs)
    return run_coroutine(result) if isinstance(result, CoroutineType) else result


def invoke_handler(request: SynapseRequest, callback: ServletCallback, **kwargs: Any) -> Any:
    """Call a handler (sync or async), under cancellation if it is `@cancellable`."""
    for hook in request.hooks:
        hook.handler_started(request)
    sock = request.client_socket
    if is_function_cancellable(callback):
        request.cancel_scope = scope = CancelScope()
        call = functools.partial(_call, callback, request, kwargs)
        return run_cancellable(call, sock, request.config.cancellation_poll_interval, scope)
    started = time.monotonic() if sock is not None else 0.0
    result = _call(callback, request, kwargs)
    # Uncancellable handlers run to the end; a client that left meanwhile is
    # noted (the access log shows "200!"). Only worth a syscall for slow handlers.
    if sock is not None:
        slow = time.monotonic() - started > request.config.cancellation_poll_interval
        if slow and client_gone(sock):
            request.cancel_scope = scope = CancelScope()
            scope.disconnected = True
    return result


def _is_body_iterator(result: object) -> bool:
    return isinstance(result, Iterator) or (
        isinstance(result, Iterable) and not isinstance(result, (bytes, str, dict, list, tuple))
    )


class _DirectServeResource(Resource):
    """Calls `on_<METHOD>(request)`; HEAD is served by `on_GET`."""

    def render(self, request: SynapseRequest) -> WSGIApplication:
        request.servlet_name = type(self).__name__
        try:
            callback, kwargs = self._get_handler(request)
            result = invoke_handler(request, callback, **kwargs)
            return self._send_response(request, result)
        except (Exception, CancelledError) as exc:  # noqa: BLE001 - every failure gets a response
            return self._send_error_response(request, exc)

    def _get_handler(self, request: SynapseRequest) -> tuple[ServletCallback, dict[str, Any]]:
        method = "GET" if request.method == "HEAD" else request.method
        handler = getattr(self, f"on_{method}", None) if method.isalpha() else None
        if handler is None:
            raise _unrecognized(request, self._allowed_methods())
        return handler, {}

    def _allowed_methods(self) -> list[str]:
        allowed = [m for m in _HANDLER_METHODS if hasattr(self, f"on_{m}")]
        return [*allowed, "HEAD"] if "GET" in allowed else allowed

    def _send_response(self, request: SynapseRequest, result: Any) -> WSGIApplication:
        raise NotImplementedError

    def _send_error_response(self, request: SynapseRequest, exc: BaseException) -> WSGIApplication:
        raise NotImplementedError


def _unrecognized(request: SynapseRequest, allowed: list[str]) -> UnrecognizedRequestError:
    if request.config.legacy_unrecognized_400:
        return UnrecognizedRequestError(code=HTTPStatus.BAD_REQUEST)
    if allowed:
        return UnrecognizedRequestError(
            code=HTTPStatus.METHOD_NOT_ALLOWED, headers={"Allow": ", ".join(allowed)}
        )
    return UnrecognizedRequestError()


def _returned_nothing(request: SynapseRequest) -> WSGIApplication:
    if request.response is None:
        raise RuntimeError(f"{request.servlet_name} returned None without sending a response")
    return request.response


class DirectServeJsonResource(_DirectServeResource):
    """A resource whose `on_<METHOD>` handlers answer in JSON.

    Handlers return `(code, json_object)`, a response (ours or Werkzeug's),
    an iterator of JSON bytes (streamed), or None after `respond_with_*`.
    """

    def __init__(self, canonical_json: bool = False, config: ServerConfig | None = None) -> None:
        self.canonical_json = canonical_json
        self.config = config

    def _send_response(self, request: SynapseRequest, result: Any) -> WSGIApplication:
        if result is None:
            return _returned_nothing(request)
        if isinstance(result, tuple):
            code, obj = result
            return self._json_response(request, code, obj)
        if isinstance(result, WerkzeugResponse):
            # CORS belongs on every JSON API response, whoever built it.
            for name, value in h.cors_headers(request.config):
                result.headers.setdefault(name, value)
            return result
        if callable(result):
            return cast("WSGIApplication", result)
        if _is_body_iterator(result):
            return json_stream_response(200, result, config=request.config)
        raise TypeError(f"{request.servlet_name} returned {type(result).__name__}, not (code, object)")

    def _json_response(self, request: SynapseRequest, code: int, obj: Any) -> Response:
        config = request.config
        request.response_code = code
        sock = request.client_socket
        if sock is not None and is_gevent_socket(sock) and is_large(obj, config.large_json_items):
            # Encoding a big body in one go would freeze every other greenlet.
            # Only the canonical encoder works in pieces (sorted keys are valid
            # compact JSON too).
            pieces = iter_encode_canonical_json(obj, config.max_chunk_size)
            return json_stream_response(code, cooperative(pieces), config=config)
        return json_response(code, obj, canonical_json=self.canonical_json, config=config)

    def _send_error_response(self, request: SynapseRequest, exc: BaseException) -> WSGIApplication:
        return return_json_error(request, exc, self.config or request.config)


class JsonResource(DirectServeJsonResource):
    """Routes requests to servlet callbacks by method and path pattern.

    Patterns match the whole raw path; parameters are unquoted afterwards and
    passed as keyword arguments. The first registered pattern wins.
    """

    def __init__(self, canonical_json: bool = True, config: ServerConfig | None = None) -> None:
        super().__init__(canonical_json, config)
        self.router = Router()

    def register_paths(
        self,
        method: str,
        path_patterns: Iterable[PathPattern],
        callback: ServletCallback,
        servlet_classname: str,
    ) -> None:
        """Send `method` requests matching any of `path_patterns` to `callback`."""
        for pattern in path_patterns:
            logger.debug("Registering for %s %s", method, getattr(pattern, "pattern", pattern))
            self.router.add(method, pattern, (callback, servlet_classname))

    def _get_handler(self, request: SynapseRequest) -> tuple[ServletCallback, dict[str, Any]]:
        request.servlet_name = "unrecognised_request_handler"
        try:
            route, kwargs = self.router.match(request.method, request.raw_path)
        except UnrecognizedRequestError:
            if request.config.legacy_unrecognized_400:
                raise UnrecognizedRequestError(code=HTTPStatus.BAD_REQUEST) from None
            raise
        callback, request.servlet_name = route.endpoint
        request.route = route.pattern
        return callback, kwargs


class RestServlet:
    """A group of handlers sharing `PATTERNS`; `register` wires each `on_<METHOD>`."""

    PATTERNS: ClassVar[Iterable[PathPattern]] = ()

    def register(self, http_server: JsonResource) -> None:
        for method in _HANDLER_METHODS:
            handler = getattr(self, f"on_{method}", None)
            if handler is not None:
                http_server.register_paths(method, self.PATTERNS, handler, type(self).__name__)


class DirectServeHtmlResource(_DirectServeResource):
    """A resource whose `on_<METHOD>` handlers return HTML (str or bytes).

    `isLeaf` is False: it answers its own path only. Errors render
    `ERROR_TEMPLATE`, a `str` with `{code}`/`{msg}` or a `jinja2.Template`.
    """

    isLeaf = False
    ERROR_TEMPLATE: ClassVar[str | jinja2.Template] = HTML_ERROR_TEMPLATE

    def _send_response(self, request: SynapseRequest, result: Any) -> WSGIApplication:
        if result is None:
            return _returned_nothing(request)
        if isinstance(result, (bytes, str)):
            return html_response(200, result)
        if isinstance(result, tuple):
            code, body = result
            return html_response(code, body)
        if callable(result):
            return cast("WSGIApplication", result)
        raise TypeError(f"{request.servlet_name} returned {type(result).__name__}, not HTML")

    def _send_error_response(self, request: SynapseRequest, exc: BaseException) -> WSGIApplication:
        return return_html_error(request, exc, self.ERROR_TEMPLATE)


class OptionsResource(Resource):
    """Answers OPTIONS (a CORS preflight) for its path and every path below it."""

    answers_options = True

    def render(self, request: SynapseRequest) -> WSGIApplication:
        if request.method == "OPTIONS":
            request.servlet_name = "OptionsResource"
            return options_response(request.config)
        return super().render(request)


class RootRedirect(Resource):
    """Redirects its own path (`/`) elsewhere; deeper paths get a JSON 404."""

    def __init__(self, path: str) -> None:
        self.url = path

    def render(self, request: SynapseRequest) -> WSGIApplication:
        if request.postpath not in ("", "/"):
            return Resource.render(self, request)
        if request.method not in ("GET", "HEAD"):
            return return_json_error(request, _unrecognized(request, ["GET", "HEAD"]))
        request.servlet_name = "RootRedirect"
        return redirect_response(self.url)


class RootOptionsRedirectResource(OptionsResource, RootRedirect):
    """Synapse's root: OPTIONS everywhere, and `/` redirected."""
