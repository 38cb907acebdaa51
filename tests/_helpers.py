"""Helpers shared by the unit/behaviour tests driven through Werkzeug's test `Client`.

The apps under test are built from synwsgi's public surface only (`Site`,
`JsonResource`, `RestServlet`, ...); nothing of synwsgi's internals is mocked.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import pytest
from werkzeug.test import Client, TestResponse

from synwsgi import JsonResource, Resource, ServerConfig, Site

CORS_HEADERS: dict[str, str] = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, HEAD, POST, PUT, DELETE, OPTIONS",
    "Access-Control-Allow-Headers": "X-Requested-With, Content-Type, Authorization, Date",
    "Access-Control-Expose-Headers": "Synapse-Trace-Id, Server",
}

CORS_HEADERS_MSC3886: dict[str, str] = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, HEAD, POST, PUT, DELETE, OPTIONS",
    "Access-Control-Allow-Headers": (
        "X-Requested-With, Content-Type, Authorization, Date, If-Match, If-None-Match"
    ),
    "Access-Control-Expose-Headers": "ETag, Location, X-Max-Bytes",
}

ANTI_FRAMING_HEADERS: dict[str, str] = {
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "frame-ancestors 'none';",
}

NO_CACHE = "no-cache, no-store, must-revalidate"

UNRECOGNIZED_BODY = b'{"errcode":"M_UNRECOGNIZED","error":"Unrecognized request"}'
INTERNAL_ERROR_BODY = b'{"errcode":"M_UNKNOWN","error":"Internal server error"}'
CANCELLED_BODY = b'{"errcode":"M_UNKNOWN","error":"Request cancelled"}'

# Headers that may legitimately appear more than once in a response.
_REPEATABLE = {"set-cookie"}

Callback = Callable[..., Any]


def make_client(resources: Mapping[str, Resource], config: ServerConfig | None = None) -> Client:
    """A test client for a `Site` mounting `resources`."""
    return Client(Site(resources, config))


def json_resource(*routes: tuple[str, Iterable[Any], Callback, str]) -> JsonResource:
    """A `JsonResource` with `(method, patterns, callback, servlet_name)` registered in order."""
    resource = JsonResource()
    for method, patterns, callback, name in routes:
        resource.register_paths(method, list(patterns), callback, name)
    return resource


def json_client(
    *routes: tuple[str, Iterable[Any], Callback, str], config: ServerConfig | None = None
) -> Client:
    """A client for a `JsonResource` mounted at `/` with `routes` registered."""
    return make_client({"/": json_resource(*routes)}, config)


def assert_headers_unique(response: TestResponse) -> None:
    """Every header but Set-Cookie appears exactly once."""
    names = {name.lower() for name, _ in response.headers}
    for name in names - _REPEATABLE:
        values = response.headers.getlist(name)
        assert len(values) == 1, f"header {name!r} appears {len(values)} times: {values!r}"


def assert_header_once(response: TestResponse, name: str, value: str) -> None:
    assert response.headers.getlist(name) == [value], (name, response.headers.getlist(name))


def assert_cors(response: TestResponse, expected: Mapping[str, str] = CORS_HEADERS) -> None:
    for name, value in expected.items():
        assert_header_once(response, name, value)


def assert_no_cors(response: TestResponse) -> None:
    cors = [name for name, _ in response.headers if name.lower().startswith("access-control-")]
    assert cors == [], cors


def assert_json_response(response: TestResponse, status: int) -> Any:
    """Status, the JSON headers (each once) and an exact Content-Length; returns the body."""
    assert response.status_code == status, (response.status_code, response.data)
    assert_header_once(response, "Content-Type", "application/json")
    assert_header_once(response, "Cache-Control", NO_CACHE)
    assert_header_once(response, "Content-Length", str(len(response.data)))
    assert_cors(response)
    assert_headers_unique(response)
    return json.loads(response.data)


def assert_json_error(
    response: TestResponse, status: int, errcode: str, error: str | None = None
) -> dict[str, Any]:
    body = assert_json_response(response, status)
    assert isinstance(body, dict)
    assert body["errcode"] == errcode, body
    if error is not None:
        assert body["error"] == error, body
    return body


def assert_unrecognized(response: TestResponse, status: int = 404) -> None:
    assert response.status_code == status, (response.status_code, response.data)
    assert response.data == UNRECOGNIZED_BODY
    assert_json_response(response, status)


def error_records(caplog: pytest.LogCaptureFixture) -> list[Any]:
    return [r for r in caplog.records if r.levelname == "ERROR"]
