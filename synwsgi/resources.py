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
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, cast

from ._internal.routing import Router
from .dispatch import Dispatch, ServletCallback
from .errors import MethodNotAllowedError, UnrecognizedRequestError
from .policy import Kind
from .responses import HTML_ERROR_TEMPLATE, options_response, redirect_response

if TYPE_CHECKING:
    import jinja2

    from .config import ServerConfig
    from .request import SynapseRequest

logger = logging.getLogger(__name__)

PathPattern = str | re.Pattern[str]
#: What `get_handler` returns: the handler (a `Dispatch`, or a bare callback,
#: known by the resource's class name) and its keyword arguments.
Handler = tuple[Dispatch | ServletCallback, dict[str, Any]]

#: Twisted's `server.NOT_DONE_YET`: a `render` method that wrote its answer
#: with `request.write()`/`finish()` returns it instead of the body.
NOT_DONE_YET = 1

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
    the prefix itself and their children (`putChild`), anything else being a
    JSON 404. A subclass answers in one of two ways:

    * synwsgi's: override `get_handler`, a lookup that returns the handler
      (a `Dispatch`) and writes nothing;
    * Twisted's, as Synapse writes its small resources: define `render(request)`
      or `render_GET(request)`, `render_OPTIONS(request)`, ..., returning the
      body bytes (with `request.setResponseCode`/`setHeader`) or
      `NOT_DONE_YET` after `request.write()`/`finish()`.
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
    #: Twisted's children, by (unquoted) path segment: see `putChild`
    children: dict[str, Resource] | None = None

    def putChild(self, path: str | bytes, child: Resource) -> None:
        """Serve `child` at the path segment `path` below this resource (Twisted's `putChild`)."""
        if self.children is None:
            self.children = {}
        self.children[path.decode("utf-8") if isinstance(path, bytes) else path] = child

    def get_handler(self, request: SynapseRequest) -> Handler:
        """The handler that answers `request`; the lookup writes nothing on the request.

        Raises `UnrecognizedRequestError` (404, or 405 via `MethodNotAllowedError`).
        """
        render = _twisted_render(self, request.method)
        if render is None:
            allowed = _twisted_methods(self)
            raise method_not_allowed(request, allowed) if allowed else UnrecognizedRequestError()
        return Dispatch(_RenderAdapter(render), type(self).__name__), {}

    def render(self, request: SynapseRequest) -> bytes | int:
        """Twisted's entry point; by default `render_<METHOD>` (see `get_handler`)."""
        raise UnrecognizedRequestError()


def _twisted_render(resource: Resource, method: str) -> Callable[[SynapseRequest], Any] | None:
    """`render_<METHOD>` (HEAD served by GET's, as Twisted does), else an overridden `render`."""
    if method.isalpha():
        render = getattr(resource, f"render_{method}", None)
        if render is None and method == "HEAD":
            render = getattr(resource, "render_GET", None)
        if render is not None:
            return cast("Callable[[SynapseRequest], Any]", render)
    if type(resource).render is not Resource.render:
        return resource.render
    return None


def _twisted_methods(resource: Resource) -> list[str]:
    return [m for m in (*_HANDLER_METHODS, "OPTIONS") if hasattr(resource, f"render_{m}")]


class _RenderAdapter:
    """A Twisted-style `render` method as a synwsgi handler: bytes are the body,
    `NOT_DONE_YET` means the answer was written on the request."""

    __slots__ = ("render",)

    def __init__(self, render: Callable[[SynapseRequest], Any]) -> None:
        self.render = render

    def __call__(self, request: SynapseRequest) -> Any:
        body = self.render(request)
        if not any(name.lower() == "content-type" for name, _ in request.response_headers or ()):
            request.setHeader("Content-Type", "text/html")  # Twisted's `defaultContentType`
        if body == NOT_DONE_YET:
            if request.written() is None:
                request.finish()
            return None
        if isinstance(body, str):
            body = body.encode("utf-8")
        if not isinstance(body, bytes):
            raise TypeError(f"{request.servlet_name}.render returned {type(body).__name__}, not bytes")
        request.write(body)
        request.finish()
        return None


class UnrecognizedRequestResource(Resource):
    """Answers every request below it with the JSON 404 (Synapse's resource of that name)."""


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
        # of them, but ported constructors pass them. Unset, the class's default holds.
        if canonical_json is not None:
            self.canonical_json = canonical_json
        self.config = config

    def get_handler(self, request: SynapseRequest) -> Handler:
        method = "GET" if request.method == "HEAD" else request.method
        if method.isalpha():
            handler = getattr(self, f"on_{method}", None) or getattr(self, f"_async_render_{method}", None)
            if handler is not None:
                return Dispatch(handler, type(self).__name__), {}
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
            source = pattern if isinstance(pattern, str) else pattern.pattern
            logger.debug("Registering for %s %s", method, source)
            self.router.add(method, pattern, Dispatch(callback, servlet_classname, source))

    def get_handler(self, request: SynapseRequest) -> Handler:
        route, kwargs = self.router.match(request.method, request.raw_path)
        return route.endpoint, kwargs


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
            return _OPTIONS, {}
        return super().get_handler(request)


def _options(request: SynapseRequest) -> Any:
    return options_response()


_OPTIONS = Dispatch(_options, "OptionsResource")


class RootRedirect(Resource):
    """Redirects its own path (`/`) elsewhere; deeper paths get a JSON 404."""

    def __init__(self, path: str) -> None:
        self.url = path

    def get_handler(self, request: SynapseRequest) -> Handler:
        if request.postpath not in ("", "/"):
            raise UnrecognizedRequestError()
        if request.method not in ("GET", "HEAD"):
            raise method_not_allowed(request, ["GET"])
        return Dispatch(self._redirect, "RootRedirect"), {}

    def _redirect(self, request: SynapseRequest) -> Any:
        return redirect_response(self.url)


class RootOptionsRedirectResource(OptionsResource, RootRedirect):
    """Synapse's root: OPTIONS everywhere, and `/` redirected."""
