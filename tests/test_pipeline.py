"""The one request pipeline (issue #9): each defect the review found, through the public API.

Each of these failed on the code before the pipeline was rebuilt.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest
from _helpers import (
    CORS_HEADERS,
    assert_cors,
    assert_headers_unique,
    assert_no_cors,
    assert_unrecognized,
    json_client,
)
from werkzeug.test import Client
from werkzeug.wrappers import Response as WerkzeugResponse

from synwsgi import (
    CancelledError,
    DirectServeHtmlResource,
    JsonResource,
    OptionsResource,
    RedirectException,
    Response,
    RestServlet,
    RootOptionsRedirectResource,
    ServerConfig,
    Site,
    SynapseRequest,
    finish_request,
    respond_with_json_bytes,
)
from synwsgi.body import ResponseBody
from synwsgi.observability.hooks import RequestHooks
from synwsgi.responses import json_response


class Recorder(RequestHooks):
    """Counts what the hooks are told, per request."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.finished: list[str] = []

    def request_started(self, request: SynapseRequest) -> None:
        self.started.append(request.request_id)

    def request_finished(self, request: SynapseRequest, body: ResponseBody) -> None:
        self.finished.append(request.request_id)


class Broken(RequestHooks):
    def __init__(self, where: str) -> None:
        self.where = where

    def request_started(self, request: SynapseRequest) -> None:
        if self.where == "started":
            raise RuntimeError("hook broke at start")

    def response_started(self, request: SynapseRequest, response: Any) -> None:
        if self.where == "response":
            raise RuntimeError("hook broke at response")

    def request_finished(self, request: SynapseRequest, body: ResponseBody) -> None:
        if self.where == "finished":
            raise RuntimeError("hook broke at finish")


def _ok(request: SynapseRequest) -> tuple[int, Any]:
    return 200, {"ok": True}


def _site(*hooks: RequestHooks, config: ServerConfig | None = None) -> Site:
    resource = JsonResource()
    resource.register_paths("GET", ["/ok"], _ok, "Ok")
    return Site({"/": resource}, config, hooks=hooks)


# -- one boundary: hooks ------------------------------------------------------------------


@pytest.mark.parametrize("where", ["started", "response", "finished"])
def test_a_raising_hook_is_logged_once_with_its_name_and_the_request_goes_on(
    where: str, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = Recorder()
    client = Client(_site(Broken(where), recorder))
    with caplog.at_level(logging.ERROR):
        response = client.get("/ok")
        assert response.status_code == 200 and response.json == {"ok": True}
        response.close()
    failures = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(failures) == 1 and "Broken" in failures[0].getMessage(), failures
    assert recorder.started == recorder.finished and len(recorder.finished) == 1


def test_request_finished_runs_once_when_the_handler_fails() -> None:
    def boom(request: SynapseRequest) -> Any:
        raise RuntimeError("boom")

    recorder = Recorder()
    resource = JsonResource()
    resource.register_paths("GET", ["/boom"], boom, "Boom")
    client = Client(Site({"/": resource}, hooks=[recorder]))
    for path in ("/boom", "/nowhere", "/boom"):
        client.get(path).close()
    assert len(recorder.finished) == 3 and recorder.finished == recorder.started


# -- one conversion ---------------------------------------------------------------------


def test_any_wsgi_app_works_even_one_that_starts_the_response_late() -> None:
    def lazy_app(environ: Any, start_response: Any) -> Iterator[bytes]:
        start_response("201 Created", [("Content-Type", "application/json")])
        yield b'{"lazy":'
        yield b"true}"

    client = json_client(("GET", ["/lazy"], lambda request: lazy_app, "Lazy"))
    response = client.get("/lazy")
    assert response.status_code == 201 and response.json == {"lazy": True}
    assert_cors(response)


# -- one header policy --------------------------------------------------------------------


def test_a_response_the_servlet_built_gets_the_same_cors_as_code_and_object() -> None:
    built = json_client(
        ("GET", ["/r"], lambda request: Response(200, [("Content-Type", "application/json")], b"{}"), "R")
    )
    plain = json_client(("GET", ["/r"], _ok, "R"))
    for response in (built.get("/r"), plain.get("/r")):
        assert_cors(response)
        assert_headers_unique(response)


def test_a_werkzeug_response_keeps_its_own_cors_value_and_gets_no_duplicate() -> None:
    def own(request: SynapseRequest) -> WerkzeugResponse:
        return WerkzeugResponse("{}", headers={"Access-Control-Allow-Origin": "https://a.example"})

    response = json_client(("GET", ["/w"], own, "W")).get("/w")
    assert response.headers.getlist("Access-Control-Allow-Origin") == ["https://a.example"]
    assert response.headers["Access-Control-Allow-Methods"] == CORS_HEADERS["Access-Control-Allow-Methods"]
    assert_headers_unique(response)


@pytest.mark.parametrize("where", ["resource", "site"])
def test_send_cors_false_sends_no_cors_header_anywhere(where: str) -> None:
    no_cors = ServerConfig(send_cors=False)
    resource = JsonResource(config=no_cors if where == "resource" else None)
    resource.register_paths("GET", ["/_matrix/ok"], _ok, "Ok")
    resource.register_paths("GET", ["/_matrix/built"], lambda r: json_response(200, {}), "Built")
    mounts = {"/_matrix": resource} if where == "resource" else {"/": OptionsResource(), "/_matrix": resource}
    client = Client(Site(mounts, no_cors if where == "site" else None))
    paths = ["/_matrix/ok", "/_matrix/built", "/_matrix/unknown"]
    if where == "site":
        paths.append("/elsewhere")
    for path in paths:
        assert_no_cors(client.get(path))
    if where == "site":
        assert_no_cors(client.open("/_matrix/ok", method="OPTIONS"))


def test_msc4108_rendezvous_gets_synapses_cors_variant() -> None:
    path = "/_matrix/client/unstable/org.matrix.msc4108/rendezvous"
    response = json_client(("POST", [path], _ok, "Rendezvous")).post(path)
    assert response.headers["Access-Control-Allow-Headers"] == "Content-Type, If-Match, If-None-Match"
    assert response.headers["Access-Control-Expose-Headers"] == "Synapse-Trace-Id, Server, ETag"


# -- one error map --------------------------------------------------------------------------


class _CancelledPage(DirectServeHtmlResource):
    def on_GET(self, request: SynapseRequest) -> str:
        raise CancelledError()


def test_a_cancelled_html_handler_answers_499_with_the_template() -> None:
    response = Client(Site({"/page": _CancelledPage()})).get("/page")
    assert response.status_code == 499
    assert response.mimetype == "text/html"
    assert "<title>Error 499</title>" in response.get_data(as_text=True)


def test_legacy_unrecognized_400_everywhere() -> None:
    config = ServerConfig(legacy_unrecognized_400=True)
    resource = JsonResource()
    resource.register_paths("GET", ["/_matrix/ok"], _ok, "Ok")
    client = Client(Site({"/_matrix": resource, "/page": _CancelledPage()}, config))
    for method, path in [("GET", "/outside"), ("GET", "/_matrix/unknown"), ("POST", "/_matrix/ok")]:
        response = client.open(path, method=method)
        assert_unrecognized(response, 400)
        assert "Allow" not in response.headers


class _NotModified(DirectServeHtmlResource):
    def on_GET(self, request: SynapseRequest) -> str:
        raise RedirectException("/elsewhere", 304)


def test_204_and_304_carry_no_body() -> None:
    client = Client(Site({"/": RootOptionsRedirectResource("/x"), "/nm": _NotModified()}))
    not_modified = client.get("/nm")
    assert not_modified.status_code == 304 and not_modified.data == b""
    assert "Content-Length" not in not_modified.headers
    options = client.open("/anything", method="OPTIONS")
    assert options.status_code == 204 and options.data == b""


# -- one writer per fact ----------------------------------------------------------------------


def test_set_response_code_then_write_and_finish_request_sends_that_code() -> None:
    def created(request: SynapseRequest) -> None:
        request.setResponseCode(201)
        request.setHeader(b"Content-Type", b"application/json")
        request.write(b'{"made":')
        request.write(b"1}")
        finish_request(request)

    response = json_client(("PUT", ["/made"], created, "Made")).put("/made")
    assert response.status_code == 201 and response.json == {"made": 1}
    assert_cors(response)


def test_the_last_status_a_handler_sets_is_the_one_sent() -> None:
    def later(request: SynapseRequest) -> None:
        respond_with_json_bytes(request, 200, b"{}")
        request.setResponseCode(201)

    response = json_client(("POST", ["/later"], later, "Later")).post("/later")
    assert response.status_code == 201 and response.data == b"{}"


# -- smaller behaviours -------------------------------------------------------------------------


def test_405_lists_options_where_an_options_resource_answers_it() -> None:
    resource = JsonResource()
    resource.register_paths("GET", ["/_matrix/ok"], _ok, "Ok")
    with_options = Client(Site({"/": OptionsResource(), "/_matrix": resource}))
    without = Client(Site({"/_matrix": resource}))
    assert with_options.post("/_matrix/ok").headers["Allow"] == "GET, HEAD, OPTIONS"
    assert without.post("/_matrix/ok").headers["Allow"] == "GET, HEAD"


def test_multipart_is_415_unless_the_handler_asks_for_it() -> None:
    def upload(request: SynapseRequest) -> tuple[int, Any]:
        return 200, {"size": len(request.get_data())}

    def wants(request: SynapseRequest) -> tuple[int, Any]:
        return 200, {"size": len(request.get_data())}

    wants.accepts_multipart = True  # type: ignore[attr-defined]
    client = json_client(("POST", ["/up"], upload, "Up"), ("POST", ["/wants"], wants, "Wants"))
    data = {"file": (__import__("io").BytesIO(b"x" * 10), "x.txt")}
    refused = client.post("/up", data=data, content_type="multipart/form-data")
    assert refused.status_code == 415 and refused.json["errcode"] == "M_UNRECOGNIZED"
    accepted = client.post("/wants", data={"file": (__import__("io").BytesIO(b"x"), "x.txt")})
    assert accepted.status_code == 200


def test_request_class_is_pluggable() -> None:
    class MyRequest(SynapseRequest):
        flavour = "mine"

    def which(request: SynapseRequest) -> tuple[int, Any]:
        return 200, {"flavour": getattr(request, "flavour", None)}

    resource = JsonResource()
    resource.register_paths("GET", ["/which"], which, "Which")
    assert Client(Site({"/": resource}, request_class=MyRequest)).get("/which").json == {"flavour": "mine"}


def test_a_server_refusing_the_headers_gets_a_500_and_the_hooks_hear_once() -> None:
    """`start_response` may raise (a server refusing a header); PEP 3333 lets the app answer again."""
    recorder = Recorder()
    calls: list[tuple[str, Any]] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        calls.append((status, exc_info))
        if len(calls) == 1:
            raise ValueError("header refused")
        return lambda data: None

    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/ok", "wsgi.input": None, "QUERY_STRING": ""}
    body = _site(recorder)(environ, start_response)
    data = b"".join(body)
    getattr(body, "close", lambda: None)()
    assert [status for status, _ in calls] == ["200 OK", "500 Internal Server Error"]
    assert calls[1][1] is not None and calls[1][1][0] is ValueError
    assert json.loads(data)["errcode"] == "M_UNKNOWN"
    assert len(recorder.finished) == 1 and recorder.finished == recorder.started


def test_a_path_info_that_is_text_not_latin_1_is_read_as_utf_8() -> None:
    """PEP 3333 gives PATH_INFO as bytes decoded as latin-1; a server or a
    middleware that passes text instead (here `/€`, and no RAW_URI or
    REQUEST_URI to read the raw target from) must still get an answer, not an
    exception out of the application: the text is the path's UTF-8."""
    calls: list[str] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        calls.append(status)
        return lambda data: None

    paths: list[str] = []

    class Euro(RestServlet):
        PATTERNS = [re.compile("^/(?P<name>[^/]*)$")]

        def on_GET(self, request: SynapseRequest, name: str) -> tuple[int, Any]:
            paths.append(request.raw_path)
            return 200, {"name": name}

    resource = JsonResource()
    Euro().register(resource)
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/\u20ac", "wsgi.input": None, "QUERY_STRING": ""}
    data = b"".join(Site({"/": resource})(environ, start_response))
    assert calls == ["200 OK"]
    assert json.loads(data) == {"name": "\u20ac"}
    assert paths == ["/%E2%82%AC"]
