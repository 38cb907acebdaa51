"""Resources: what a `Site` mounts, and which handler answers a request.

A resource only *finds* the handler (`get_handler`); the `Site` runs it and
turns whatever it returned into a response, the same way for every resource
(`results.to_response`), and renders its errors as the resource asks: JSON
for APIs, an HTML page for `DirectServeHtmlResource`.

* `JsonResource` routes to servlet callbacks registered with `register_paths`
  (usually by `RestServlet.register`);
* `DirectServeJsonResource` / `DirectServeHtmlResource` call
  `on_<METHOD>` (or Synapse's `_async_render_<METHOD>`);
* `OptionsResource`, `RootRedirect` and their mix answer CORS preflights and `/`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from .errors import MethodNotAllowedError, UnrecognizedRequestError
from .policy import Kind
from .responses import HTML_ERROR_TEMPLATE, options_response, redirect_response
from .routing import Router

if TYPE_CHECKING:
    import jinja2

    from .config import ServerConfig
    from .request import SynapseRequest

logger = logging.getLogger(__name__)

ServletCallback = Callable[..., Any]
PathPattern = str | re.Pattern[str]
Handler = tuple[ServletCallback, dict[str, Any]]

_HANDLER_METHODS = ("GET", "PUT", "POST", "DELETE", "PATCH")


class HttpServer(Protocol):
    """What `register_servlets(hs, http_server)` registers into (Synapse's `HttpServer`)."""

    def register_paths(
        self,
        method: str,
        path_patterns: Iterable[PathPattern],
        callback: ServletCallback,
        servlet_classname: str,
    ) -> None: ...


class Resource:
    """Something a `Site` mounts at a path prefix.

    `isLeaf` resources answer every path below their prefix; the others only
    the prefix itself (anything deeper is a JSON 404).
    """

    isLeaf: ClassVar[bool] = True
    #: answer OPTIONS for every path below this resource's prefix
    answers_options: ClassVar[bool] = False
    #: the kind of response its handlers produce (for results that do not say)
    result_kind: ClassVar[Kind] = Kind.JSON
    #: set (a `str` with `{code}`/`{msg}`, or a `jinja2.Template`) to render errors as HTML
    ERROR_TEMPLATE: ClassVar[str | jinja2.Template | None] = None
    #: `ServerConfig` overriding the site's for this resource's requests
    config: ServerConfig | None = None
    #: JSON results in canonical JSON (Synapse's `JsonResource` default)
    canonical_json: bool = True

    def get_handler(self, request: SynapseRequest) -> Handler:
        """The callback that answers `request` and its keyword arguments.

        Raises `UnrecognizedRequestError` (404, or 405 via `MethodNotAllowedError`).
        """
        request.servlet_name = "unrecognised_request_handler"
        raise UnrecognizedRequestError()


def method_not_allowed(request: SynapseRequest, allowed: list[str]) -> UnrecognizedRequestError:
    """405 listing `allowed` (HEAD implied by GET)."""
    if "GET" in allowed and "HEAD" not in allowed:
        allowed = [*allowed, "HEAD"]
    return MethodNotAllowedError(allowed)


class _DirectServeResource(Resource):
    """Calls `on_<METHOD>(request)` or `_async_render_<METHOD>(request)`; HEAD is served by GET's."""

    def __init__(
        self,
        hs: object = None,
        canonical_json: bool | None = None,
        extract_context: bool = False,
        clock: object = None,
        *,
        config: ServerConfig | None = None,
    ) -> None:
        # `hs`, `extract_context` and `clock` are Synapse's; synwsgi needs none
        # of them, but ported constructors pass them. A `bool` first argument
        # is synwsgi 0.1's `canonical_json`. Unset, the class's default holds.
        if isinstance(hs, bool):
            canonical_json = hs
        if canonical_json is not None:
            self.canonical_json = canonical_json
        self.config = config

    def get_handler(self, request: SynapseRequest) -> Handler:
        request.servlet_name = type(self).__name__
        method = "GET" if request.method == "HEAD" else request.method
        if method.isalpha():
            handler = getattr(self, f"on_{method}", None) or getattr(self, f"_async_render_{method}", None)
            if handler is not None:
                return handler, {}
        allowed = [m for m in _HANDLER_METHODS if self._answers(m)]
        raise method_not_allowed(request, allowed) if allowed else UnrecognizedRequestError()

    def _answers(self, method: str) -> bool:
        return hasattr(self, f"on_{method}") or hasattr(self, f"_async_render_{method}")


class DirectServeJsonResource(_DirectServeResource):
    """A resource whose handlers answer in JSON.

    Handlers return `(code, json_object)`, a response (ours, Werkzeug's or
    any WSGI app), an iterator of JSON bytes (streamed), or None after
    `respond_with_*`. Synapse's default is not canonical JSON here.
    """

    canonical_json = False


class JsonResource(DirectServeJsonResource):
    """Routes requests to servlet callbacks by method and path pattern.

    Patterns match the whole raw path; parameters are unquoted afterwards and
    passed as keyword arguments. The first registered pattern wins.
    """

    canonical_json = True

    @cached_property
    def router(self) -> Router:
        """The routes registered so far (made on first use: the constructor is the direct-serve one)."""
        return Router()

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

    def get_handler(self, request: SynapseRequest) -> Handler:
        request.servlet_name = "unrecognised_request_handler"
        route, kwargs = self.router.match(request.method, request.raw_path)
        callback, request.servlet_name = route.endpoint
        request.route = route.pattern
        return callback, kwargs


class RestServlet:
    """A group of handlers sharing `PATTERNS`; `register` wires each `on_<METHOD>`."""

    PATTERNS: ClassVar[Iterable[PathPattern]] = ()

    def register(self, http_server: HttpServer) -> None:
        """Register every `on_<METHOD>` for `PATTERNS`; no patterns is a programming error."""
        patterns = list(self.PATTERNS)
        if not patterns:
            raise NotImplementedError("RestServlet must register something.")
        for method in _HANDLER_METHODS:
            handler = getattr(self, f"on_{method}", None)
            if handler is not None:
                http_server.register_paths(method, patterns, handler, type(self).__name__)


class DirectServeHtmlResource(_DirectServeResource):
    """A resource whose handlers return HTML (str or bytes, or `(code, html)`).

    `isLeaf` is False: it answers its own path only. Errors render
    `ERROR_TEMPLATE`, a `str` with `{code}`/`{msg}` or a `jinja2.Template`.
    """

    isLeaf = False
    result_kind = Kind.HTML
    ERROR_TEMPLATE: ClassVar[str | jinja2.Template | None] = HTML_ERROR_TEMPLATE


class OptionsResource(Resource):
    """Answers OPTIONS (a CORS preflight) for its path and every path below it."""

    answers_options = True

    def get_handler(self, request: SynapseRequest) -> Handler:
        if request.method == "OPTIONS":
            request.servlet_name = "OptionsResource"
            return _options, {}
        return super().get_handler(request)


def _options(request: SynapseRequest) -> Any:
    return options_response()


class RootRedirect(Resource):
    """Redirects its own path (`/`) elsewhere; deeper paths get a JSON 404."""

    def __init__(self, path: str) -> None:
        self.url = path

    def get_handler(self, request: SynapseRequest) -> Handler:
        if request.postpath not in ("", "/"):
            return Resource.get_handler(self, request)
        request.servlet_name = "RootRedirect"
        if request.method not in ("GET", "HEAD"):
            raise method_not_allowed(request, ["GET"])
        return self._redirect, {}

    def _redirect(self, request: SynapseRequest) -> Any:
        return redirect_response(self.url)


class RootOptionsRedirectResource(OptionsResource, RootRedirect):
    """Synapse's root: OPTIONS everywhere, and `/` redirected."""
