"""Behaviour 8 (first half): `OptionsResource`, `RootRedirect` and their mix."""

from __future__ import annotations

from typing import Any

import pytest
from _helpers import (
    CORS_HEADERS_MSC3886,
    assert_cors,
    assert_header_once,
    assert_headers_unique,
    assert_json_response,
    assert_no_cors,
    assert_unrecognized,
    json_resource,
    make_client,
)
from werkzeug.test import Client, TestResponse

from synwsgi import (
    OptionsResource,
    RootOptionsRedirectResource,
    RootRedirect,
    ServerConfig,
    SynapseRequest,
)


def handler(request: SynapseRequest, **params: Any) -> tuple[int, Any]:
    return 200, {"ok": True}


def assert_options_answer(response: TestResponse) -> None:
    assert response.status_code == 204, (response.status_code, response.data)
    assert response.data == b""
    assert_header_once(response, "Content-Length", "0")
    assert_cors(response)
    assert_headers_unique(response)


@pytest.fixture
def options_client() -> Client:
    api = json_resource(("GET", ["/api/known"], handler, "Known"))
    return make_client({"/": OptionsResource(), "/api": api})


@pytest.mark.parametrize(
    "path", ["/", "/api/known", "/api/unknown", "/nothing/here", "/api/%E2%98%83", "/a//b/", "/x?y=1"]
)
def test_options_on_any_path_under_options_resource(options_client: Client, path: str) -> None:
    assert_options_answer(options_client.options(path))


def test_options_does_not_call_the_handler() -> None:
    calls: list[str] = []

    def on_get(request: SynapseRequest) -> tuple[int, Any]:
        calls.append("get")
        return 200, {}

    api = json_resource(("OPTIONS", ["/api/x"], on_get, "X"))
    client = make_client({"/": OptionsResource(), "/api": api})
    assert_options_answer(client.options("/api/x"))
    assert calls == []


def test_options_resource_mounted_deeper_only_answers_below_its_prefix() -> None:
    client = make_client({"/opts": OptionsResource()})
    assert_options_answer(client.options("/opts"))
    assert_options_answer(client.options("/opts/deeper/still"))
    response = client.options("/elsewhere")
    assert response.status_code == 404
    assert_json_response(response, 404)


def test_options_resource_other_methods_get_json_404() -> None:
    client = make_client({"/": OptionsResource()})
    assert_unrecognized(client.get("/"))
    assert_unrecognized(client.get("/anything"))


def test_options_msc3886_cors_variant() -> None:
    client = make_client({"/": OptionsResource()}, ServerConfig(experimental_cors_msc3886=True))
    response = client.options("/x")
    assert response.status_code == 204
    assert_header_once(response, "Content-Length", "0")
    assert_cors(response, CORS_HEADERS_MSC3886)
    assert_headers_unique(response)


def test_root_redirect_redirects_root_only() -> None:
    client = make_client({"/": RootRedirect("/_matrix/static/")})
    response = client.get("/")
    assert response.status_code == 302
    assert_header_once(response, "Location", "/_matrix/static/")
    assert_headers_unique(response)
    for path in ("/x", "/x/", "/_matrix/static/", "/%2F"):
        assert_unrecognized(client.get(path))


def test_root_redirect_head() -> None:
    client = make_client({"/": RootRedirect("/elsewhere")})
    response = client.head("/")
    assert response.status_code == 302
    assert response.headers["Location"] == "/elsewhere"
    assert response.data == b""


def test_root_redirect_is_not_a_json_response() -> None:
    client = make_client({"/": RootRedirect("/elsewhere")})
    response = client.get("/")
    assert_no_cors(response)


def test_root_redirect_at_root_leaves_unknown_paths_json_404() -> None:
    api = json_resource(("GET", ["/api/known"], handler, "Known"))
    client = make_client({"/": RootRedirect("/api/known"), "/api": api})
    assert client.get("/").status_code == 302
    assert_json_response(client.get("/api/known"), 200)
    assert_unrecognized(client.get("/unknown"))
    assert_unrecognized(client.get("/unknown/deeper"))
    assert_unrecognized(client.get("/api/unknown"))


def test_root_redirect_wrong_method_is_not_a_redirect() -> None:
    client = make_client({"/": RootRedirect("/elsewhere")})
    response = client.post("/")
    assert response.status_code in (404, 405)
    assert "Location" not in response.headers
    assert_json_response(response, response.status_code)


def test_root_options_redirect_resource() -> None:
    client = make_client({"/": RootOptionsRedirectResource("/target")})
    response = client.get("/")
    assert response.status_code == 302
    assert response.headers["Location"] == "/target"
    assert_options_answer(client.options("/"))
    assert_options_answer(client.options("/any/path"))
    assert_unrecognized(client.get("/any/path"))
