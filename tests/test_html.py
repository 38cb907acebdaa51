"""Behaviour 5 and the HTML half of 6: `DirectServeHtmlResource` pages and errors."""

from __future__ import annotations

import html
from typing import Any, ClassVar

import jinja2
import markupsafe
import pytest
from _helpers import (
    ANTI_FRAMING_HEADERS,
    assert_header_once,
    assert_headers_unique,
    assert_no_cors,
    assert_unrecognized,
    error_records,
    make_client,
)
from werkzeug.test import Client, TestResponse

from synwsgi import (
    HTML_ERROR_TEMPLATE,
    CodeMessageException,
    Codes,
    DirectServeHtmlResource,
    NotFoundError,
    RedirectException,
    SynapseError,
    SynapseRequest,
)

# Synapse's template, as in the seeds' synapse/http/server.py.
SEED_TEMPLATE = """<!DOCTYPE html>
<html lang=en>
  <head>
    <meta charset="utf-8">
    <title>Error {code}</title>
  </head>
  <body>
    <p>{msg}</p>
  </body>
</html>
"""

NASTY = "I'm <b>bold</b> & \"quoted\" <script>alert('x')</script>"
SECRET = "s3cr3t-html-detail"


def assert_html(response: TestResponse, status: int) -> str:
    assert response.status_code == status, (response.status_code, response.data)
    assert_header_once(response, "Content-Type", "text/html; charset=utf-8")
    assert_header_once(response, "Content-Length", str(len(response.data)))
    for name, value in ANTI_FRAMING_HEADERS.items():
        assert_header_once(response, name, value)
    assert_no_cors(response)
    assert_headers_unique(response)
    return response.data.decode("utf-8")


def page_client(resource: DirectServeHtmlResource) -> Client:
    return make_client({"/page": resource})


class Raising(DirectServeHtmlResource):
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def on_GET(self, request: SynapseRequest) -> str:
        raise self.exc


def test_str_page() -> None:
    class Page(DirectServeHtmlResource):
        def on_GET(self, request: SynapseRequest) -> str:
            return "<p>Hello \u2603</p>"

    response = page_client(Page()).get("/page")
    assert assert_html(response, 200) == "<p>Hello \u2603</p>"


def test_bytes_page_and_post() -> None:
    class Page(DirectServeHtmlResource):
        def on_GET(self, request: SynapseRequest) -> bytes:
            return b"<p>bytes</p>"

        def on_POST(self, request: SynapseRequest) -> bytes:
            return b"<p>posted</p>"

    client = page_client(Page())
    assert assert_html(client.get("/page"), 200) == "<p>bytes</p>"
    assert assert_html(client.post("/page"), 200) == "<p>posted</p>"


def test_async_page() -> None:
    class Page(DirectServeHtmlResource):
        async def on_GET(self, request: SynapseRequest) -> str:
            return "<p>async</p>"

    assert assert_html(page_client(Page()).get("/page"), 200) == "<p>async</p>"


def test_head_page() -> None:
    class Page(DirectServeHtmlResource):
        def on_GET(self, request: SynapseRequest) -> str:
            return "<p>0123456789</p>"

    client = page_client(Page())
    get = client.get("/page")
    head = client.head("/page")
    assert head.status_code == 200
    assert head.data == b""
    assert head.headers["Content-Length"] == str(len(get.data))
    assert sorted(head.headers.items()) == sorted(get.headers.items())


def test_html_resource_answers_its_own_path_only() -> None:
    class Page(DirectServeHtmlResource):
        def on_GET(self, request: SynapseRequest) -> str:
            return "<p>x</p>"

    client = page_client(Page())
    assert client.get("/page").status_code == 200
    assert_unrecognized(client.get("/page/deeper"))


def test_code_message_exception_uses_default_seed_template() -> None:
    assert HTML_ERROR_TEMPLATE == SEED_TEMPLATE
    response = page_client(Raising(CodeMessageException(418, NASTY))).get("/page")
    body = assert_html(response, 418)
    assert body == SEED_TEMPLATE.format(code=418, msg=html.escape(NASTY))
    assert "<script>" not in body


def test_synapse_error_on_html_resource() -> None:
    response = page_client(Raising(SynapseError(403, "Go away <now>", Codes.FORBIDDEN))).get("/page")
    body = assert_html(response, 403)
    assert body == SEED_TEMPLATE.format(code=403, msg="Go away &lt;now&gt;")


def test_not_found_on_html_resource() -> None:
    response = page_client(Raising(NotFoundError("No such page"))).get("/page")
    assert assert_html(response, 404) == SEED_TEMPLATE.format(code=404, msg="No such page")


def test_exception_headers_are_sent_on_html_errors() -> None:
    exc = SynapseError(429, "slow down", Codes.LIMIT_EXCEEDED, headers={"Retry-After": "5"})
    response = page_client(Raising(exc)).get("/page")
    assert_html(response, 429)
    assert_header_once(response, "Retry-After", "5")


def test_str_template_gets_code_and_escaped_msg() -> None:
    class Page(Raising):
        ERROR_TEMPLATE: ClassVar[str] = "<h1>{code}</h1><p>{msg}</p>"

    response = page_client(Page(SynapseError(400, NASTY))).get("/page")
    assert assert_html(response, 400) == f"<h1>400</h1><p>{html.escape(NASTY)}</p>"


def test_jinja2_template_renders_with_autoescape() -> None:
    template = jinja2.Environment(autoescape=True).from_string("<h1>{{ code }}</h1><p>{{ msg }}</p>")

    class Page(Raising):
        ERROR_TEMPLATE: ClassVar[Any] = template

    response = page_client(Page(SynapseError(400, NASTY))).get("/page")
    body = assert_html(response, 400)
    assert body == f"<h1>400</h1><p>{markupsafe.escape(NASTY)}</p>"
    assert "<script>" not in body


@pytest.mark.parametrize("code", [301, 302, 307])
def test_redirect_exception(code: int) -> None:
    exc = RedirectException("/elsewhere?x=1", http_code=code)
    exc.cookies.append("a=1; Path=/")
    exc.cookies.append(b"b=2; HttpOnly")
    response = page_client(Raising(exc)).get("/page")
    assert response.status_code == code
    assert_header_once(response, "Location", "/elsewhere?x=1")
    assert response.headers.getlist("Set-Cookie") == ["a=1; Path=/", "b=2; HttpOnly"]
    assert_headers_unique(response)


def test_redirect_exception_bytes_location_and_default_code() -> None:
    exc = RedirectException(b"https://example.org/")
    response = page_client(Raising(exc)).get("/page")
    assert response.status_code == 302
    assert response.headers.getlist("Location") == ["https://example.org/"]
    assert response.headers.getlist("Set-Cookie") == []


def test_redirect_location_cannot_inject_headers() -> None:
    exc = RedirectException("/next\r\nSet-Cookie: evil=1\r\nX-Injected: yes")
    response = page_client(Raising(exc)).get("/page")
    assert response.status_code == 302
    locations = response.headers.getlist("Location")
    assert len(locations) == 1
    assert "\r" not in locations[0] and "\n" not in locations[0]
    assert response.headers.getlist("Set-Cookie") == []
    assert "X-Injected" not in response.headers


def test_unexpected_exception_is_html_500(request_log: pytest.LogCaptureFixture) -> None:
    class BrokenPage(Raising):
        pass

    response = page_client(BrokenPage(RuntimeError(SECRET))).get("/page")
    body = assert_html(response, 500)
    assert body == SEED_TEMPLATE.format(code=500, msg="Internal server error")
    assert SECRET not in body
    errors = error_records(request_log)
    assert len(errors) == 1
    assert errors[0].exc_info is not None
    assert errors[0].exc_info[0] is RuntimeError


def test_wrong_method_on_html_resource() -> None:
    class Page(DirectServeHtmlResource):
        def on_GET(self, request: SynapseRequest) -> str:
            return "<p>x</p>"

    response = page_client(Page()).delete("/page")
    assert response.status_code == 405
    assert sorted(m.strip() for m in response.headers["Allow"].split(",")) == ["GET", "HEAD"]
    assert_headers_unique(response)
