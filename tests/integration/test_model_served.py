"""The request/response model (issue #17) on real gunicorn workers.

Serves ``_model_app.py``: a module-level response shared by every request, a
big non-canonical JSON body, and the whole `Site` wrapped by a middleware.

1. A shared constant response is byte-identical across 1 000 requests mixing
   GET, HEAD and OPTIONS from four concurrent keep-alive clients (threads and
   greenlets share it), on gthread, gevent and the default PyWSGIWorker;
2. a middleware wrapping ``site.wsgi_app`` sees every response;
3. ``canonical_json=False`` holds for a body big enough to be encoded
   incrementally under gevent: the keys arrive in the order the handler gave.
"""

from __future__ import annotations

import concurrent.futures
import http.client
import json
from collections.abc import Iterator

import pytest

from ._model_app import BIG_KEYS
from .servers import HOST, Server, gunicorn_server

pytestmark = pytest.mark.integration

APP = "tests.integration._model_app:app"
REQUESTS = 1000
CLIENTS = 4


@pytest.fixture(scope="module", params=("gthread", "gevent", "pywsgi"))
def model_server(request: pytest.FixtureRequest) -> Iterator[Server]:
    with gunicorn_server(APP, request.param, ready_path="/_model/shared") as server:
        yield server


def _exchange(port: int, count: int, offset: int) -> list[tuple[str, int, list[tuple[str, str]], bytes]]:
    """`count` requests on one keep-alive connection, cycling GET, HEAD, OPTIONS."""
    seen = []
    connection = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        for i in range(count):
            method = ("GET", "HEAD", "OPTIONS")[(i + offset) % 3]
            connection.request(method, "/_model/shared")
            response = connection.getresponse()
            body = response.read()
            headers = [(k, v) for k, v in response.getheaders() if k.lower() not in ("date", "server")]
            seen.append((method, response.status, headers, body))
    finally:
        connection.close()
    return seen


def test_a_shared_response_is_identical_across_1000_mixed_requests(model_server: Server) -> None:
    port = int(model_server.url.rsplit(":", 1)[1])
    per_client = REQUESTS // CLIENTS
    with concurrent.futures.ThreadPoolExecutor(CLIENTS) as pool:
        batches = list(pool.map(lambda n: _exchange(port, per_client, n), range(CLIENTS)))
    answers = [answer for batch in batches for answer in batch]
    assert len(answers) == REQUESTS
    by_method: dict[str, set[tuple[int, tuple[tuple[str, str], ...], bytes]]] = {}
    for method, status, headers, body in answers:
        by_method.setdefault(method, set()).add((status, tuple(headers), body))
    # Exactly one distinct answer per method, every time.
    assert {method: len(variants) for method, variants in by_method.items()} == {
        "GET": 1,
        "HEAD": 1,
        "OPTIONS": 1,
    }
    ((get_status, get_headers, get_body),) = by_method["GET"]
    ((head_status, head_headers, head_body),) = by_method["HEAD"]
    ((options_status, options_headers, _),) = by_method["OPTIONS"]
    assert get_status == head_status == 200 and options_status == 204
    assert json.loads(get_body) == {"shared": True, "padding": "x" * 200}
    assert head_body == b"" and head_headers == get_headers
    # Each header once (the old pipeline appended the policy's set on every request).
    names = [name.lower() for name, _ in get_headers]
    assert len(names) == len(set(names)), get_headers
    # The middleware wrapping `site.wsgi_app` saw every response.
    assert ("X-Stamp", "wrapped") in get_headers and ("X-Stamp", "wrapped") in options_headers


def test_canonical_json_false_holds_for_big_bodies(model_server: Server) -> None:
    port = int(model_server.url.rsplit(":", 1)[1])
    connection = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        connection.request("GET", "/_model/big")
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()
    assert response.status == 200
    keys = list(json.loads(body))
    assert len(keys) == BIG_KEYS
    assert keys == sorted(keys, reverse=True), "keys re-sorted: canonical_json=False was ignored"
    assert body.startswith(b'{"k04999":4999,')  # compact, as `encode_json` writes it
