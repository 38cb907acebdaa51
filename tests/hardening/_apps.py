"""Tiny synwsgi apps for the hardening tests, built from the public surface only.

They put request input where the showcase app never does: into a redirect
target, a `Set-Cookie` of a `RedirectException`, a header set with
`request.setHeader`, an HTML error message (string and Jinja templates), and
serve a static directory next to a secret file.

`build_site(static_dir)` is used in-process; `app` is what a real server
runs: its static directory comes from `SYNWSGI_HARDENING_STATIC` (no static
mount without it).

Routes:

``GET /_t/redirect?to=URL``             `respond_with_redirect(request, URL)`
``GET /_t/redirect-bytes?to=URL``       the same with the target as UTF-8 bytes
``GET /_t/redirect-cors?to=URL``        `respond_with_redirect(..., cors=True)`
``GET /_t/set-header?value=V``          `request.setHeader("X-Echo", V)` then `200 {}`
``GET /_t/cookie-redirect?cookie=C&to=URL``  HTML resource raising `RedirectException(URL)` with cookie C
``GET /_t/html-error?msg=M``            HTML resource raising `SynapseError(400, M)` (str template)
``GET /_t/jinja-error?msg=M``           the same with an autoescaping `jinja2.Template`
``GET /_t/json-error?msg=M``            JSON resource raising `SynapseError(400, M)`
``GET /_t/ok``                          `{"ok": true}`
``POST /_t/echo-cancellable``           a `@cancellable` echo (under gevent it runs in a greenlet of its own)
``/static/...``                         `StaticResource(static_dir)`
"""

from __future__ import annotations

import os
from http import HTTPStatus
from typing import Any

import jinja2

from synwsgi import (
    Codes,
    DirectServeHtmlResource,
    JsonResource,
    RedirectException,
    Resource,
    RestServlet,
    Site,
    StaticResource,
    SynapseError,
    SynapseRequest,
    cancellable,
    parse_json_object_from_request,
    respond_with_redirect,
)

STATIC_ENV = "SYNWSGI_HARDENING_STATIC"


def _arg(request: SynapseRequest, name: str, default: str = "") -> str:
    # Plain `request.query_args` (a str MultiDict), as handler code often reads it: no validation.
    return request.query_args.get(name, default)


class RedirectServlet(RestServlet):
    PATTERNS = ["/_t/redirect"]

    def on_GET(self, request: SynapseRequest) -> None:
        respond_with_redirect(request, _arg(request, "to", "/"))


class RedirectBytesServlet(RestServlet):
    PATTERNS = ["/_t/redirect-bytes"]

    def on_GET(self, request: SynapseRequest) -> None:
        respond_with_redirect(request, _arg(request, "to", "/").encode("utf-8", "surrogateescape"))


class RedirectCorsServlet(RestServlet):
    PATTERNS = ["/_t/redirect-cors"]

    def on_GET(self, request: SynapseRequest) -> None:
        respond_with_redirect(request, _arg(request, "to", "/"), cors=True)


class SetHeaderServlet(RestServlet):
    PATTERNS = ["/_t/set-header"]

    def on_GET(self, request: SynapseRequest) -> tuple[int, Any]:
        request.setHeader("X-Echo", _arg(request, "value"))
        return 200, {}


class JsonErrorServlet(RestServlet):
    PATTERNS = ["/_t/json-error"]

    def on_GET(self, request: SynapseRequest) -> tuple[int, Any]:
        raise SynapseError(HTTPStatus.BAD_REQUEST, _arg(request, "msg"), Codes.INVALID_PARAM)


class OkServlet(RestServlet):
    PATTERNS = ["/_t/ok"]

    def on_GET(self, request: SynapseRequest) -> tuple[int, Any]:
        return 200, {"ok": True}


class CancellableEchoServlet(RestServlet):
    PATTERNS = ["/_t/echo-cancellable"]

    @cancellable
    def on_POST(self, request: SynapseRequest) -> tuple[int, Any]:
        return 200, parse_json_object_from_request(request)


class CookieRedirectResource(DirectServeHtmlResource):
    def on_GET(self, request: SynapseRequest) -> str:
        exc = RedirectException(_arg(request, "to", "/"))
        exc.cookies.append(_arg(request, "cookie", "a=b"))
        exc.cookies.append(_arg(request, "cookie", "a=b").encode("utf-8", "surrogateescape"))
        raise exc


class HtmlErrorResource(DirectServeHtmlResource):
    def on_GET(self, request: SynapseRequest) -> str:
        raise SynapseError(HTTPStatus.BAD_REQUEST, _arg(request, "msg"), Codes.INVALID_PARAM)


JINJA_ERROR_TEMPLATE = jinja2.Environment(autoescape=True).from_string(
    "<!DOCTYPE html><html><head><title>Error {{ code }}</title></head><body><p>{{ msg }}</p></body></html>"
)


class JinjaErrorResource(HtmlErrorResource):
    ERROR_TEMPLATE = JINJA_ERROR_TEMPLATE


def build_site(static_dir: str | os.PathLike[str] | None = None) -> Site:
    api = JsonResource()
    for servlet in (
        RedirectServlet(),
        RedirectBytesServlet(),
        RedirectCorsServlet(),
        SetHeaderServlet(),
        JsonErrorServlet(),
        OkServlet(),
        CancellableEchoServlet(),
    ):
        servlet.register(api)
    resources: dict[str, Resource] = {
        "/_t": api,
        "/_t/cookie-redirect": CookieRedirectResource(),
        "/_t/html-error": HtmlErrorResource(),
        "/_t/jinja-error": JinjaErrorResource(),
    }
    if static_dir is not None:
        resources["/static"] = StaticResource(static_dir)
    return Site(resources)


app = build_site(os.environ.get(STATIC_ENV))
