"""The request/response model (issue #17): one owner of request state, responses
as values, the effective config everywhere, a WSGI entry that wraps, Werkzeug's
request contract, and Synapse's Twisted-style resources. Each defect the issue
lists is reproduced here through the public surface (Werkzeug's test Client).
"""

from __future__ import annotations

import ast
import contextvars
import io
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from werkzeug.test import Client, EnvironBuilder
from werkzeug.wrappers import Response as WerkzeugResponse

import synwsgi
from synwsgi import (
    NOT_DONE_YET,
    DirectServeJsonResource,
    JsonResource,
    OptionsResource,
    Resource,
    ServerConfig,
    Site,
    SynapseRequest,
    UnrecognizedRequestResource,
    json_response,
)

PACKAGE = Path(synwsgi.__file__).parent


def _site(callback: Any, method: str = "GET", path: str = "/x", **site_kwargs: Any) -> Site:
    resource = JsonResource()
    resource.register_paths(method, [path], callback, "Probe")
    return Site({"/": resource}, **site_kwargs)


# -- responses are values -------------------------------------------------------------


def test_a_shared_constant_response_is_never_edited() -> None:
    shared = json_response(200, {"ok": True})
    headers_before = list(shared.headers)
    client = Client(_site(lambda request: shared, method="GET"))
    first = client.get("/x")
    seen = [client.get("/x") for _ in range(5)] + [client.head("/x")] + [client.get("/x")]
    for response in seen:
        assert (
            response.headers.to_wsgi_list() == first.headers.to_wsgi_list()
            or response.request.method == "HEAD"
        )
    assert seen[-1].data == first.data == b'{"ok":true}'
    assert seen[-2].data == b""  # the HEAD
    assert shared.headers == headers_before and shared.body == b'{"ok":true}'


def test_a_shared_204_keeps_its_headers_for_the_next_request() -> None:
    shared = synwsgi.Response(204, [("Content-Type", "application/json"), ("Content-Length", "0")], b"")
    client = Client(_site(lambda request: shared))
    for _ in range(3):
        response = client.get("/x")
        assert response.status_code == 204 and "Content-Type" not in response.headers
    assert shared.headers == [("Content-Type", "application/json"), ("Content-Length", "0")]


# -- the status has one writer --------------------------------------------------------


def test_set_response_code_holds_for_a_returned_body_iterator() -> None:
    def handler(request: SynapseRequest) -> Iterator[bytes]:
        request.setResponseCode(201)
        return iter([b'{"made":', b"true}"])

    response = Client(_site(handler)).get("/x")
    assert response.status_code == 201 and response.json == {"made": True}


def test_response_code_is_the_status_sent_and_servlet_name_a_view() -> None:
    seen: dict[str, Any] = {}

    class Hook(synwsgi.RequestHooks):
        def request_finished(self, request: SynapseRequest, body: Any) -> None:
            seen.update(
                code=request.code,
                response_code=request.response_code,
                servlet=request.servlet_name,
                metrics_name=request.request_metrics.name,
                route=request.route,
            )

    def handler(request: SynapseRequest) -> tuple[int, Any]:
        seen["during"] = request.response_code
        return 202, {}

    Client(_site(handler, hooks=[Hook()])).get("/x").close()
    assert seen == {
        "during": None,
        "code": 202,
        "response_code": 202,
        "servlet": "Probe",
        "metrics_name": "Probe",
        "route": "/x",
    }
    with pytest.raises(AttributeError):
        SynapseRequest({"REQUEST_METHOD": "GET", "PATH_INFO": "/"}).servlet_name = "x"  # type: ignore[misc]


# -- the effective config ---------------------------------------------------------------


def test_a_resources_own_body_limit_is_honoured_for_declared_and_streamed_bodies() -> None:
    resource = JsonResource(config=ServerConfig(max_request_body_size=10))
    resource.register_paths(
        "POST", ["/small/x"], lambda request: (200, {"n": len(synwsgi.read_body(request))}), "P"
    )
    client = Client(Site({"/small": resource}))
    body = b'{"a": "' + b"x" * 100 + b'"}'
    declared = client.post("/small/x", data=body)
    assert declared.status_code == 413 and declared.json["errcode"] == "M_TOO_LARGE"
    assert "(>10)" in declared.json["error"]

    # A body of unknown length (chunked): no Content-Length to refuse it early.
    environ = EnvironBuilder("/small/x", method="POST", input_stream=io.BytesIO(body)).get_environ()
    environ.pop("CONTENT_LENGTH", None)
    environ["HTTP_TRANSFER_ENCODING"] = "chunked"
    streamed = client.open(environ)
    assert streamed.status_code == 413, streamed.data
    assert client.post("/small/x", data=b"{}").json == {"n": 2}


def test_every_way_to_read_the_body_applies_the_limit_and_strict_json() -> None:
    config = ServerConfig(max_request_body_size=16)
    results: dict[str, Any] = {}

    def handler(request: SynapseRequest) -> tuple[int, Any]:
        results["json"] = request.json
        return 200, {"data": request.get_data(as_text=True)}

    client = Client(_site(handler, method="POST", config=config))
    too_big = client.post("/x", data=b'{"a": "' + b"x" * 40 + b'"}', content_type="application/json")
    assert too_big.status_code == 413
    nan = client.post("/x", data=b'{"a": NaN}', content_type="application/json")
    assert nan.status_code == 400 and nan.json["errcode"] == "M_NOT_JSON"
    ok = client.post("/x", data=b'{"a": 1}', content_type="application/json")
    assert ok.status_code == 200 and ok.json == {"data": '{"a": 1}'} and results["json"] == {"a": 1}


# -- a WSGI entry that wraps ----------------------------------------------------------


class _Stamp:
    """A plain WSGI middleware, as a user would wrap `site.wsgi_app` with."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        def stamped(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            return start_response(status, [*headers, ("X-Stamp", "1")], exc_info)

        return self.app(environ, stamped)


def test_wsgi_app_can_be_wrapped_flask_style() -> None:
    site = _site(lambda request: (200, {"ok": 1}))
    site.wsgi_app = _Stamp(site.wsgi_app)  # type: ignore[method-assign]
    response = Client(site).get("/x")
    assert response.headers["X-Stamp"] == "1" and response.json == {"ok": 1}


def test_behind_proxy_composes_with_wrapping() -> None:
    site = _site(lambda request: (200, {"ip": request.getClientIP()}), config=ServerConfig(behind_proxy=True))
    site.wsgi_app = _Stamp(site.wsgi_app)  # type: ignore[method-assign]
    response = Client(site).get("/x", headers={"X-Forwarded-For": "203.0.113.9"})
    assert response.json == {"ip": "203.0.113.9"} and response.headers["X-Stamp"] == "1"


_worker_var: contextvars.ContextVar[str] = contextvars.ContextVar("worker_var", default="unset")
_request_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_var", default="unset")


def test_requests_see_the_workers_context_and_nothing_of_each_other() -> None:
    def handler(request: SynapseRequest) -> tuple[int, Any]:
        seen = {"worker": _worker_var.get(), "previous": _request_var.get()}
        _request_var.set(request.request_id)
        return 200, seen

    token = _worker_var.set("set at worker start")
    try:
        client = Client(_site(handler))
    finally:
        _worker_var.reset(token)
    for _ in range(3):
        assert client.get("/x").json == {"worker": "set at worker start", "previous": "unset"}


def test_a_failing_request_class_gets_a_json_500_not_a_traceback() -> None:
    class Broken(SynapseRequest):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            raise RuntimeError("boom in the constructor")

    response = Client(_site(lambda request: (200, {}), request_class=Broken)).get("/x")
    assert response.status_code == 500
    assert response.json == {"errcode": "M_UNKNOWN", "error": "Internal server error"}


# -- Werkzeug's contract ---------------------------------------------------------------


def test_werkzeug_request_code_works_unchanged() -> None:
    def handler(request: SynapseRequest) -> Any:
        return WerkzeugResponse(
            f"{request.args.get('q')}|{request.values.getlist('q')}|{request.args.get('n', type=int)}"
        )

    response = Client(_site(handler)).get("/x?q=a&q=b&n=7")
    assert response.get_data(as_text=True) == "a|['a', 'b']|7"


# -- Synapse's Twisted-style resources -----------------------------------------------------


class _PathResource(Resource):
    """Synapse's tests/test_server.py OptionsResourceTests.DummyResource, translated."""

    isLeaf = True

    def render(self, request: SynapseRequest) -> bytes:
        return request.raw_path.encode("ascii")


def _options_tree() -> Client:
    root = OptionsResource()
    root.putChild(b"res", _PathResource())
    return Client(Site({"/": root}))


def test_options_resource_unknown_path_still_204() -> None:
    response = _options_tree().open("/foo/", method="OPTIONS")
    assert response.status_code == 204 and response.data == b""
    assert response.headers["Access-Control-Allow-Origin"] == "*"


def test_options_resource_known_path_204() -> None:
    response = _options_tree().open("/res/", method="OPTIONS")
    assert response.status_code == 204 and response.data == b""


def test_options_resource_child_renders_twisted_style() -> None:
    response = _options_tree().get("/res/")
    assert response.status_code == 200 and response.data == b"/res/"


def test_options_resource_unknown_get_is_404() -> None:
    response = _options_tree().get("/foo/")
    assert response.status_code == 404 and response.json["errcode"] == "M_UNRECOGNIZED"


class _WellKnown(Resource):
    """How Synapse writes its well-known resources: `render_GET` with setHeader and bytes."""

    def render_GET(self, request: SynapseRequest) -> bytes:
        request.setResponseCode(200)
        request.setHeader(b"Content-Type", b"application/json")
        return b'{"m.homeserver": {"base_url": "https://example.org"}}'

    def render_POST(self, request: SynapseRequest) -> int:
        request.setResponseCode(202)
        request.write(b"accepted")
        request.finish()
        return NOT_DONE_YET


def test_render_method_resources() -> None:
    client = Client(Site({"/.well-known/matrix/client": _WellKnown()}))
    response = client.get("/.well-known/matrix/client")
    assert response.status_code == 200 and response.json["m.homeserver"]["base_url"] == "https://example.org"
    assert response.headers["Content-Type"] == "application/json"
    head = client.head("/.well-known/matrix/client")
    assert head.status_code == 200 and head.data == b""
    posted = client.post("/.well-known/matrix/client")
    assert posted.status_code == 202 and posted.data == b"accepted"
    refused = client.delete("/.well-known/matrix/client")
    assert refused.status_code == 405 and set(refused.headers["Allow"].split(", ")) >= {"GET", "POST"}


def test_unrecognized_request_resource_answers_404_below_it() -> None:
    client = Client(Site({"/_matrix/media": UnrecognizedRequestResource()}))
    for path in ("/_matrix/media", "/_matrix/media/v3/upload"):
        response = client.post(path, data=b"x")
        assert response.status_code == 404 and response.json["errcode"] == "M_UNRECOGNIZED"


# -- multipart is refused before routing ------------------------------------------------


def test_multipart_to_an_unknown_path_is_415() -> None:
    client = Client(_site(lambda request: (200, {}), method="POST"))
    response = client.post("/nothing/here", data={"f": "v"}, content_type="multipart/form-data")
    assert response.status_code == 415 and response.json["errcode"] == "M_UNRECOGNIZED"


def test_multipart_opt_in_is_kept() -> None:
    def upload(request: SynapseRequest) -> tuple[int, Any]:
        return 200, {"f": request.form["f"]}

    upload.accepts_multipart = True  # type: ignore[attr-defined]
    client = Client(_site(upload, method="POST"))
    assert client.post("/x", data={"f": "v"}, content_type="multipart/form-data").json == {"f": "v"}


# -- one owner of request state, no private imports ------------------------------------


def _request_attribute_writes(path: Path) -> set[str]:
    writes = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        for target in targets:
            for item in target.elts if isinstance(target, ast.Tuple) else [target]:
                if (
                    isinstance(item, ast.Attribute)
                    and isinstance(item.value, ast.Name)
                    and item.value.id == "request"
                ):
                    writes.add(item.attr)
    return writes


def test_only_the_site_writes_the_pipelines_request_state() -> None:
    # `requester` is Synapse's `request.requester`, which auth code sets for the access log.
    allowed = {"auth.py": {"requester"}}
    writers = {
        name: writes - allowed.get(name, set())
        for path in PACKAGE.rglob("*.py")
        if (name := path.relative_to(PACKAGE).as_posix())
        not in ("site.py", "request.py", "_internal/compat.py")
        and (writes := _request_attribute_writes(path))
    }
    assert {name: w for name, w in writers.items() if w} == {}


def test_no_module_imports_another_modules_private_names() -> None:
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("synwsgi")):
                offenders += [
                    f"{path.relative_to(PACKAGE)}: {alias.name}"
                    for alias in node.names
                    if alias.name.startswith("_") and not alias.name.startswith("__")
                ]
    assert offenders == []


def test_direct_serve_resources_are_known_by_their_class() -> None:
    names: list[str] = []

    class Ping(DirectServeJsonResource):
        def on_GET(self, request: SynapseRequest) -> tuple[int, Any]:
            names.append(request.servlet_name)
            return 200, {}

    Client(Site({"/ping": Ping()})).get("/ping")
    assert names == ["Ping"]
