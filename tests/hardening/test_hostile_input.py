"""Hostile input never yields a 500, a traceback, a hang or a split header.

Part 1 drives the showcase app (`wsgi.app`) and a tiny app (`_apps.py`)
through Werkzeug's test `Client`, with raw request targets put into the
environ exactly as a server passes them (RAW_URI/REQUEST_URI, PATH_INFO
percent-decoded as latin-1). Part 2 sends what only a real server sees over
raw sockets to gunicorn's gevent worker configured by the repository's
`gunicorn.conf.py`: gunicorn's own limits answer (400/414/431, plain HTML,
not the app's JSON) and the same worker process keeps serving.

Every rejection by synwsgi is a 4xx JSON body with an `errcode` (HTML only
from HTML resources, escaped); every header stays well formed.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any
from urllib.parse import unquote_to_bytes

import canonicaljson
import pytest
from prometheus_client import CollectorRegistry
from werkzeug.test import Client

from synwsgi import JsonResource, RestServlet, Site, SynapseRequest
from synwsgi.observability.metrics import ServerMetrics
from tests.integration.servers import Server, raw_request

from . import _apps
from ._util import (
    check_invariants,
    content_type,
    header_problems,
    is_gunicorn_rejection,
    open_raw,
    raw_header_problems,
    raw_json_error,
    request_bytes,
    send_raw,
    timed,
)

ROOM_STATE = "/_matrix/client/v3/rooms/{}/state/m.room.name"


@pytest.fixture
def client(showcase_client: Client) -> Client:
    return showcase_client


@pytest.fixture
def apps_client() -> Client:
    return Client(_apps.build_site())


# -- percent-encodings and non-UTF-8 bytes in paths ----------------------------------------

INVALID_UTF8_SEGMENTS = [
    "%FF",
    "%C0%AE",  # overlong "."
    "%C0%AF",  # overlong "/"
    "%E0%80%AF",
    "%ED%A0%80",  # an encoded surrogate
    "%F4%90%80%80",  # above U+10FFFF
    "%80",
    "%C3",  # truncated sequence
    "%C3%28",
    "a%FEb",
    "\xff",  # raw bytes a server passes on as latin-1 text
    "\xc3\x28",
    "\x80abc",
]


@pytest.mark.parametrize("segment", INVALID_UTF8_SEGMENTS)
def test_invalid_utf8_in_path_parameter_is_400(client: Client, segment: str) -> None:
    response = open_raw(client, "GET", ROOM_STATE.format(segment))
    body = check_invariants(response, "GET")
    assert response.status_code == 400, body
    assert body["errcode"] == "M_INVALID_PARAM", body


MALFORMED_PERCENT = ["%", "%%", "%4", "%zz", "%G0", "%%41", "%u0041", "%2", "a%", "%%%"]


@pytest.mark.parametrize("segment", MALFORMED_PERCENT)
def test_malformed_percent_encoding_in_path_parameter(client: Client, segment: str) -> None:
    # Synapse's unquote leaves a malformed escape as it is; anything but a 5xx will do.
    response = open_raw(client, "GET", ROOM_STATE.format(segment))
    body = check_invariants(response, "GET")
    if response.status_code == 200:
        assert body["room_id"] == unquote_to_bytes(segment).decode("utf-8")


@pytest.mark.parametrize(
    "target",
    [
        "/%FF",
        "/_matrix/%FF/versions",
        "/_matrix/client/%FF",
        "/_matrix/static/%FF",
        "/_matrix/static/%C0%AE%C0%AE/%C0%AEsecret",
        "/_demo/%FF",
        "/_demo/error/%FF",
        "/_demo/error/%C0",
        "/\xff\xfe",
        "/_matrix/static/\xff",
        "/_demo/hello/%FF",
        "/metrics/%FF",
        "/_matrix/client/v3/rooms/%FF/send/m.room.message/%FE",
        "/_matrix/client/versions%FF",
        "/_matrix/client/versions/%00",
        "/%00",
        "/_matrix/static/%00",
        "/_matrix/static/index.html%00",
        "/\x00",
    ],
)
@pytest.mark.parametrize("method", ["GET", "HEAD", "PUT", "OPTIONS"])
def test_bad_bytes_anywhere_in_the_path(client: Client, method: str, target: str) -> None:
    response = open_raw(client, method, target, body=b"{}" if method == "PUT" else None)
    check_invariants(response, method)
    assert response.status_code != 200 or method == "OPTIONS", response.data


# -- query parameters ------------------------------------------------------------------------

QUERY_CASES = [
    ("/_demo/stream?bytes=%FF", 400),
    ("/_demo/stream?bytes=\xff", 400),
    ("/_demo/stream?bytes=%C0%B1", 400),
    ("/_demo/stream?bytes=", 400),
    ("/_demo/stream?bytes=%EF%BC%91%EF%BC%92", 400),  # fullwidth digits
    ("/_demo/stream?bytes=1_000", 400),
    ("/_demo/stream?bytes=%201", 400),
    ("/_demo/stream?bytes=99999999999999999999999", 400),
    ("/_demo/stream?bytes=18446744073709551616", 400),
    ("/_demo/stream?bytes=-1", 400),
    # Synapse reads the first value and decodes only what it reads: a bad later one is ignored.
    ("/_demo/stream?bytes=1&bytes=%FF", 200),
    ("/_demo/stream?bytes=%FF&bytes=1", 400),
    ("/_demo/large?items=%00", 400),
    ("/_demo/large?items=1e3", 400),
    ("/_demo/slow?seconds=%FF", 400),
    ("/_demo/slow?seconds=nan", 400),
    ("/_demo/slow?seconds=inf", 400),
    ("/_demo/slow?seconds=-inf", 400),
    ("/_demo/slow?seconds=1e999", 400),
    ("/_demo/slow?seconds=0x10", 400),
    ("/_matrix/client/versions?%FF=%FF&%=&&==&%%", 200),
    ("/_matrix/client/versions?" + "a=1&" * 5000, 200),
    ("/_matrix/client/versions?access_token=%FF%0D%0A", 200),
    ("/_demo/stats?x=%00%0d%0a", 200),
]


@pytest.mark.parametrize(("target", "status"), QUERY_CASES)
def test_hostile_query_parameters(client: Client, target: str, status: int) -> None:
    response, seconds = timed(open_raw, client, "GET", target)
    body = check_invariants(response, "GET")
    assert response.status_code == status, body
    if status == 400:
        # Synapse's parse_string answers a value not in its encoding with a
        # plain SynapseError (M_UNKNOWN); every other bad value is M_INVALID_PARAM.
        not_in_encoding = body["error"].endswith("must be ascii")
        assert body["errcode"] == ("M_UNKNOWN" if not_in_encoding else "M_INVALID_PARAM"), body
    assert seconds < 2


@pytest.mark.parametrize("query", ["name=%FF%3Cb%3E", "name=\xfe%3Cb%3E", "name=%3Cb%3E&x=%C0%AE"])
def test_non_utf8_query_on_an_html_page_is_refused_or_replaced_and_escaped(
    client: Client, query: str
) -> None:
    response = open_raw(client, "GET", "/_demo/hello?" + query)
    check_invariants(response, "GET", html_ok=True)
    assert response.status_code in (200, 400), response.status
    assert content_type(response) == "text/html"
    assert "<b>" not in response.get_data(as_text=True)


# -- absolute-form request targets -------------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        "http://example.org/_matrix/client/versions",
        "https://example.org:8448/_matrix/client/versions",
        "http://user:pass@example.org/_matrix/client/versions?x=1",
        "http://[::1]:8008/_matrix/client/versions",
        "http:///_matrix/client/versions",
    ],
)
def test_absolute_form_is_routed_like_origin_form(client: Client, target: str) -> None:
    expected = open_raw(client, "GET", "/_matrix/client/versions")
    response = open_raw(client, "GET", target)
    check_invariants(response, "GET")
    assert (response.status_code, response.data) == (200, expected.data)


@pytest.mark.parametrize(
    "target",
    [
        "http://example.org",
        "http://example.org?x=1",
        "http://evil.example/_matrix/static/../../../../etc/passwd",
        "http://evil.example/_matrix/static/%2e%2e/%2e%2e/etc/passwd",
        "http://example.org/%FF",
        "http://example.org/_matrix/client/v3/rooms/%FF/state/a",
        "HTTP://EXAMPLE.ORG/_matrix/client/versions",
        "http:/_matrix/client/versions",
        "http:example.org/_matrix/client/versions",
        "ftp://example.org/_matrix/client/versions",
        "//example.org/_matrix/client/versions",
        "*",
        "example.org:443",
        "http://" + "a" * 10000 + "/_matrix/client/versions",
        "http://a/" + "b/" * 5000,
        "http://example.org/_matrix/client/versions#frag",
        "/_matrix/client/versions#frag",
    ],
)
@pytest.mark.parametrize("method", ["GET", "OPTIONS"])
def test_odd_absolute_and_authority_targets(client: Client, method: str, target: str) -> None:
    response = open_raw(client, method, target)
    check_invariants(response, method, html_ok=True)
    assert b"root:" not in response.data


# -- long paths, many segments, big headers ----------------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        "/" + "a" * 100_000,
        "/_matrix/client/v3/rooms/" + "r" * 100_000 + "/state/x",
        "/_matrix/client/v3/rooms/" + "%41" * 30_000 + "/state/x",
        "/" + "a/" * 20_000,
        "/" + "/" * 50_000,
        "/_matrix/static/" + "../" * 10_000 + "etc/passwd",
        "/_matrix/client/versions?" + "x" * 200_000,
    ],
)
def test_very_long_targets_are_answered_quickly(client: Client, target: str) -> None:
    response, seconds = timed(open_raw, client, "GET", target)
    check_invariants(response, "GET")
    assert seconds < 2, seconds


def test_huge_and_many_headers(client: Client) -> None:
    headers = [(f"X-Header-{i}", "v" * 100) for i in range(2000)]
    headers += [
        ("X-Big", "b" * 1_000_000),
        ("Cookie", "c=" + "d" * 100_000),
        ("Authorization", "Bearer " + "%" * 10000),
    ]
    response, seconds = timed(open_raw, client, "GET", "/_matrix/client/versions", headers=headers)
    check_invariants(response, "GET")
    assert response.status_code == 200
    assert seconds < 2


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("Host", "a" * 10000),
        ("Host", "[::1"),
        ("Host", "example.org:notaport"),
        ("Host", "\xff\xfe"),
        ("X-Forwarded-For", "1.2.3.4, <script>, \xff"),
        ("X-Forwarded-Proto", "javascript"),
        ("Content-Type", "application/json; charset=utf-16"),
        ("Content-Type", "multipart/form-data; boundary=" + "-" * 5000),
        ("Accept-Encoding", "gzip;q=" + "9" * 5000),
        ("If-Modified-Since", "Thu, 99 Foo 99999 99:99:99 GMT"),
        ("If-None-Match", '"' + "x" * 10000 + '"' + ', W/"y"' * 1000),
        ("Range", "bytes=0-0," * 2000),
        ("Range", "bytes=99999999999999999999999-"),
        ("Range", "bytes=-0"),
        ("Range", "bytes=5-1"),
        ("Range", "pages=1-2"),
        ("Authorization", "Basic %%%%"),
        ("X-Request-ID", "\x00\x01\x7f"),
    ],
)
@pytest.mark.parametrize(
    "target", ["/_matrix/client/versions", "/_matrix/static/index.html", "/_demo/hello", "/metrics", "/"]
)
def test_hostile_header_values(client: Client, name: str, value: str, target: str) -> None:
    response, seconds = timed(open_raw, client, "GET", target, headers=[(name, value)])
    check_invariants(response, "GET", html_ok=True)
    assert seconds < 2


def test_hostile_range_on_a_static_file_is_a_json_4xx(client: Client) -> None:
    response = open_raw(client, "GET", "/_matrix/static/index.html", headers={"Range": "bytes=99999999-"})
    body = check_invariants(response, "GET")
    assert response.status_code == 416
    assert body["errcode"].startswith("M_")


# -- odd methods -----------------------------------------------------------------------------

ODD_METHODS = [
    "FOO",
    "get",
    "Get",
    "M-SEARCH",
    "PROPFIND",
    "TRACE",
    "CONNECT",
    "PATCH",
    "BREW",
    "A" * 10_000,
    "__INIT__",
    "ON_GET",
    "GET_",
    "G.E.T",
    "ÄÖÜ",
    "\xff",
    "1",
]
ODD_METHOD_TARGETS = [
    "/_matrix/client/versions",
    "/_demo/echo",
    "/_demo/hello",
    "/_demo/html-error",
    "/_demo/redirect",
    "/_matrix/static/",
    "/_matrix/static/index.html",
    "/",
    "/metrics",
    "/nope",
]


@pytest.mark.parametrize("target", ODD_METHOD_TARGETS)
@pytest.mark.parametrize("method", ODD_METHODS)
def test_odd_methods(client: Client, method: str, target: str) -> None:
    response = open_raw(client, method, target, body=b"{}")
    check_invariants(
        response, method, html_ok=target.startswith(("/_demo/hello", "/_demo/html-error", "/_demo/red"))
    )
    # Case matters in HTTP methods, but synwsgi folds them: "get" is served as GET.
    if method.upper() not in ("GET", "PATCH"):
        assert response.status_code in (400, 404, 405), (method, target, response.status)


def test_405_lists_allowed_methods(client: Client) -> None:
    response = open_raw(client, "M-SEARCH", "/_demo/echo")
    body = check_invariants(response, "M-SEARCH")
    assert response.status_code == 405 and body["errcode"] == "M_UNRECOGNIZED"
    assert response.headers.get("Allow") == "POST, OPTIONS"  # the root answers OPTIONS


def test_odd_methods_do_not_grow_the_metrics_without_bound() -> None:
    """Each distinct method is a new label value: an attacker could grow memory forever.

    gunicorn passes any 3-20 character upper-case token as a method, so the
    method label must be bounded (known methods + one catch-all).
    """
    registry = CollectorRegistry()

    class Ok(RestServlet):
        PATTERNS = ["/ok"]

        def on_GET(self, request: SynapseRequest) -> tuple[int, Any]:
            return 200, {}

    resource = JsonResource()
    Ok().register(resource)
    client = Client(Site({"/": resource}, hooks=[ServerMetrics(registry=registry)]))
    client.get("/ok").close()
    for i in range(500):
        client.open("/ok", method=f"X{i:05d}").close()
    methods = {
        sample.labels["method"]
        for metric in registry.collect()
        for sample in metric.samples
        if "method" in sample.labels
    }
    assert len(methods) <= 20, f"{len(methods)} distinct method label values, e.g. {sorted(methods)[:5]}"


# -- Content-Length --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "abc",
        "-1",
        "+2",
        "1.5",
        "1e3",
        "0x10",
        " 2",
        "2 ",
        "2, 3",
        "2,2",
        "2 2",
        "²",
        "٢",
        "\xb9",
        "0" * 100 + "2",
    ],
)
def test_bad_content_length_is_a_json_400(client: Client, value: str) -> None:
    response = client.post(
        "/_demo/echo",
        data=b"{}",
        environ_overrides={"CONTENT_LENGTH": value},
        content_type="application/json",
    )
    body = check_invariants(response, "POST")
    assert response.status_code == 400 or (response.status_code == 200 and value.strip("0") == "2"), body


def test_huge_content_length_is_413_without_reading(client: Client) -> None:
    response = client.post(
        "/_demo/echo",
        data=b"{}",
        environ_overrides={"CONTENT_LENGTH": "9" * 30},
        content_type="application/json",
    )
    body = check_invariants(response, "POST")
    assert response.status_code == 413 and body["errcode"] == "M_TOO_LARGE"


# -- JSON bombs ------------------------------------------------------------------------------


def _deep(depth: int, open_: bytes, close: bytes, inner: bytes = b"") -> bytes:
    return open_ * depth + inner + close * depth


JSON_BOMBS: dict[str, tuple[bytes, float]] = {
    "nested-arrays-100000": (_deep(100_000, b"[", b"]"), 2),
    "nested-objects-100000": (_deep(100_000, b'{"a":', b"}", b"1"), 2),
    "nested-mixed-100000": (b'{"a":' + _deep(50_000, b'[{"b":', b"}]", b"1") + b"}", 2),
    "unclosed-nesting-1000000": (b'{"a":' + b"[" * 1_000_000, 2),
    "number-1e6-digits": (b'{"a":' + b"1" * 1_000_000 + b"}", 2),
    "negative-number-1e6-digits": (b'{"a":-' + b"9" * 1_000_000 + b"}", 2),
    "fraction-1e6-digits": (b'{"a":0.' + b"1" * 1_000_000 + b"}", 2),
    "exponent-1e6-digits": (b'{"a":1e' + b"1" * 1_000_000 + b"}", 2),
    "1e999999": (b'{"a":1e999999}', 1),
    "-1e999999": (b'{"a":-1e999999}', 1),
    "1e-999999": (b'{"a":1e-999999}', 1),
    "int-4301-digits": (b'{"a":' + b"7" * 4301 + b"}", 1),
    "keys-1e6": (b"{" + b",".join(b'"k%d":0' % i for i in range(1_000_000)) + b"}", 15),
    "same-key-1e6": (b"{" + b",".join(b'"k":%d' % i for i in range(1_000_000)) + b"}", 15),
    "array-1e6-items": (b'{"a":[' + b",".join([b"0"] * 1_000_000) + b"]}", 15),
    "string-1e6-escapes": (b'{"a":"' + b"\\u0000" * 1_000_000 + b'"}', 5),
    "NaN": (b'{"a":NaN}', 1),
    "Infinity": (b'{"a":-Infinity}', 1),
    "lone-high-surrogate": (b'{"a":"\\ud800"}', 1),
    "lone-low-surrogate": (b'{"a":"\\udfff"}', 1),
    "surrogate-key": (b'{"\\ud83d":1}', 1),
    "reversed-pair": (b'{"a":"\\udc00\\ud800"}', 1),
    "raw-surrogate-bytes": (b'{"a":"\xed\xa0\x80"}', 1),
    "invalid-utf8": (b'{"a":"\xff"}', 1),
    "utf16-body": ('{"a":1}'.encode("utf-16"), 1),
    "bom": (b'\xef\xbb\xbf{"a":1}', 1),
    "bad-escape": (b'{"a":"\\x41"}', 1),
    "trailing-garbage": (b'{"a":1}garbage', 1),
    "two-documents": (b'{"a":1}{"b":2}', 1),
    "nul-bytes": (b'{"a":1}\x00\x00', 1),
    "control-char-in-string": (b'{"a":"\x01"}', 1),
    "empty": (b"", 1),
    "whitespace-1e6": (b" " * 1_000_000, 2),
}


@pytest.mark.parametrize("name", list(JSON_BOMBS))
def test_json_bombs(client: Client, name: str) -> None:
    data, bound = JSON_BOMBS[name]
    response, seconds = timed(client.post, "/_demo/echo", data=data, content_type="application/json")
    body = check_invariants(response, "POST")
    assert seconds < bound, f"{name}: {seconds:.2f}s"
    if response.status_code == 200:
        # Accepted: it must be a JSON object and come back as canonicaljson encodes it.
        parsed = json.loads(data)
        assert isinstance(parsed, dict)
        assert response.data == canonicaljson.encode_canonical_json(parsed)
    else:
        assert response.status_code == 400, body
        assert body["errcode"] in ("M_NOT_JSON", "M_BAD_JSON"), body


@pytest.mark.parametrize("depth", list(range(960, 1001, 2)))
def test_nesting_near_the_recursion_limit(client: Client, depth: int) -> None:
    # Parsing and encoding recurse at different stack depths; no depth may slip
    # between the two (accepted by the parser, then a RecursionError -> 500).
    response = client.post("/_demo/echo", data=_deep(depth, b'{"a":', b"}", b"1"))
    check_invariants(response, "POST")


# -- CR/LF and control characters in anything that ends up in a header -------------------------

HEADER_INJECTIONS = [
    "/next\r\nX-Injected: 1",
    "/next\rX-Injected: 1",
    "/next\nX-Injected: 1",
    "/next\r\n\r\n<html>injected</html>",
    "http://example.org/\r\nSet-Cookie: injected=1",
    "http://example.org\r\nX-Injected: 1/",
    "/%0d%0aX-Injected:%201",
    "/next\x00X-Injected: 1",
    "/next\x0bX-Injected",
    "/next\x7f",
    "/next\x85X-Injected: 1",
    "/next\u2028X-Injected: 1",
    "/next\u0d0a",
    "http://a\x00b/",
    "http://a\x0bb/",
    "http://a\tb/",
    "http://exa mple.org/",
    "http://[::1",
    "http://a:xx/",
    "http://a:99999999/",
    "http://\u00e9..b/",
    "http://" + "\u00e9" * 70 + "/",
    "javascript:alert(1)",
    "//evil.example/",
    "\\\\evil.example\\",
    "/" + "a" * 100_000,
]


def _assert_no_injection(headers: list[tuple[str, str]]) -> None:
    # Text left inside the same header value after CR/LF were dropped is no split.
    names = [name.lower() for name, _ in headers]
    assert "x-injected" not in names, headers
    assert not any(
        name.lower() == "set-cookie" and value.lower().startswith("injected") for name, value in headers
    ), headers
    problems = header_problems(headers)
    assert not problems, problems


def _check_redirect(apps_client: Client, endpoint: str, target: str) -> None:
    response = apps_client.get(endpoint, query_string={"to": target})
    check_invariants(response, "GET", cors=endpoint.endswith("cors"))
    _assert_no_injection(list(response.headers.to_wsgi_list()))
    if 300 <= response.status_code < 400:
        location = response.headers["Location"]
        assert "\r" not in location and "\n" not in location


@pytest.mark.parametrize("target", HEADER_INJECTIONS)
def test_redirect_target_from_input_never_splits_headers(apps_client: Client, target: str) -> None:
    """`respond_with_redirect(request, <input>)`: a 3xx with a clean Location, or a 4xx; never a 500."""
    _check_redirect(apps_client, "/_t/redirect", target)


@pytest.mark.parametrize("target", HEADER_INJECTIONS[:7])
@pytest.mark.parametrize("endpoint", ["/_t/redirect-bytes", "/_t/redirect-cors"])
def test_redirect_variants_never_split_headers(apps_client: Client, endpoint: str, target: str) -> None:
    """The same with the target as bytes, and with CORS headers."""
    _check_redirect(apps_client, endpoint, target)


@pytest.mark.parametrize(
    "value",
    [
        "plain",
        "a\r\nX-Injected: 1",
        "a\nX-Injected: 1",
        "a\rX-Injected: 1",
        "a\r\n\r\n<html>",
        "a\x00b",
        "a\x7fb",
        "\u2028\u0085",
    ],
)
def test_set_header_from_input_never_splits_headers(apps_client: Client, value: str) -> None:
    response = apps_client.get("/_t/set-header", query_string={"value": value})
    check_invariants(response, "GET")
    _assert_no_injection(list(response.headers.to_wsgi_list()))


@pytest.mark.parametrize(
    "cookie",
    [
        "session=1; Path=/",
        "session=1\r\nX-Injected: 1",
        "session=1\nSet-Cookie: injected=1",
        "session=1\rX-Injected: 1",
        "session=1\x00X-Injected",
        "session=1\x0b",
        "session=\u00e9\u2603",
    ],
)
def test_redirect_exception_cookies_never_split_headers(apps_client: Client, cookie: str) -> None:
    # Werkzeug 3.1.9's test client cannot parse some of these (safe) cookies
    # back into its jar: keep the jar out of it and look at the headers.
    client = Client(apps_client.application, use_cookies=False)
    response = client.get("/_t/cookie-redirect", query_string={"cookie": cookie, "to": "/next"})
    check_invariants(response, "GET", html_ok=True)
    assert response.status_code == 302, response.data
    _assert_no_injection(list(response.headers.to_wsgi_list()))
    assert len(response.headers.getlist("Set-Cookie")) == 2


def test_showcase_redirect_has_its_cookie(client: Client) -> None:
    response = client.get("/_demo/redirect")
    assert response.status_code == 302
    assert response.headers.getlist("Set-Cookie") == ["session=demo; Path=/; HttpOnly"]
    _assert_no_injection(list(response.headers.to_wsgi_list()))


# -- HTML-unsafe text is escaped -------------------------------------------------------------

XSS = "<script>alert('x')</script>\"&'<img src=x onerror=alert(1)>"


def _assert_escaped(text: str) -> None:
    assert "<script>" not in text and "<img" not in text, text
    assert "&lt;script&gt;" in text, text


@pytest.mark.parametrize("endpoint", ["/_t/html-error", "/_t/jinja-error"])
def test_html_error_messages_are_escaped(apps_client: Client, endpoint: str) -> None:
    response = apps_client.get(endpoint, query_string={"msg": XSS})
    check_invariants(response, "GET", html_ok=True)
    assert response.status_code == 400 and content_type(response) == "text/html"
    _assert_escaped(response.get_data(as_text=True))
    assert response.headers.get("X-Frame-Options") == "DENY"


def test_showcase_template_escapes_its_input(client: Client) -> None:
    response = client.get("/_demo/hello", query_string={"name": XSS})
    assert response.status_code == 200
    _assert_escaped(response.get_data(as_text=True))


def test_showcase_html_error_is_escaped(client: Client) -> None:
    response = client.get("/_demo/html-error")
    assert response.status_code == 418
    _assert_escaped(response.get_data(as_text=True))


@pytest.mark.parametrize("method", ["POST", "DELETE", "FOO"])
def test_html_resource_405_is_html_and_escaped(client: Client, method: str) -> None:
    response = open_raw(client, method, "/_demo/hello?name=" + "%3Cscript%3E")
    check_invariants(response, method, html_ok=True)
    assert response.status_code == 405
    assert "<script>" not in response.get_data(as_text=True)


@pytest.mark.parametrize(
    "target",
    ["/_demo/error/%3Cscript%3Ealert(1)%3C%2Fscript%3E", "/_t/json-error?msg=%3Cscript%3E"],
)
def test_json_errors_echoing_input_are_never_served_as_html(
    client: Client, apps_client: Client, target: str
) -> None:
    which = apps_client if target.startswith("/_t") else client
    response = open_raw(which, "GET", target)
    body = check_invariants(response, "GET")
    assert content_type(response) == "application/json"
    assert "<script>" in body["error"]  # JSON carries the text as it is; only its type keeps it inert


# -- through a real gunicorn gevent worker (gunicorn.conf.py) --------------------------------


LIMIT_CASES = {
    "request-line-9000": (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 414),
    "query-9000": (b"GET /_matrix/client/versions?" + b"q" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    "header-9000": (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n", 431),
    "header-name-9000": (b"GET / HTTP/1.1\r\nHost: x\r\nX" + b"a" * 9000 + b": 1\r\n\r\n", 431),
    "headers-150": (
        b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-H%d: 1\r\n" % i for i in range(150)) + b"\r\n",
        431,
    ),
}

# gunicorn bounds the number and the size of header fields, not their sum:
# 99 fields of 8 000 bytes (~800 KB) reach the application, which must cope.
BIG_HEAD = (
    b"GET /_matrix/client/versions HTTP/1.1\r\nHost: x\r\n"
    + b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 8000) for i in range(98))
    + b"\r\n"
)


@pytest.mark.integration
@pytest.mark.usefixtures("worker_survives")
@pytest.mark.parametrize("name", list(LIMIT_CASES))
def test_gunicorn_limits_answer_4xx_and_the_worker_survives(hostile_server: Server, name: str) -> None:
    data, status = LIMIT_CASES[name]
    response = send_raw(hostile_server, data)
    assert response.status == status, response
    assert is_gunicorn_rejection(response), response.headers


@pytest.mark.integration
@pytest.mark.usefixtures("worker_survives")
def test_biggest_head_gunicorn_accepts_is_served(hostile_server: Server) -> None:
    started = time.monotonic()
    response = send_raw(hostile_server, BIG_HEAD)
    assert response.status == 200, response
    assert time.monotonic() - started < 2


@pytest.mark.integration
@pytest.mark.usefixtures("worker_survives")
def test_path_just_under_the_limit_reaches_the_app(hostile_server: Server) -> None:
    response = send_raw(hostile_server, request_bytes("GET", b"/" + b"a" * 8100))
    assert response.status == 404
    raw_json_error(response)


@pytest.mark.integration
@pytest.mark.usefixtures("worker_survives")
@pytest.mark.parametrize(
    ("target", "status"),
    [
        (b"http://example.org/_matrix/client/versions", 200),
        (b"https://example.org:8448/_matrix/client/versions?x=1", 200),
        (b"http://example.org/_matrix/static/../../etc/passwd", 404),
        (b"http://example.org/_matrix/client/v3/rooms/%FF/state/a", 400),
    ],
)
def test_absolute_form_on_the_wire(hostile_server: Server, target: bytes, status: int) -> None:
    response = send_raw(hostile_server, request_bytes("GET", target))
    assert response.status == status, response
    assert not raw_header_problems(response)
    if status >= 400:
        raw_json_error(response)
    else:
        assert json.loads(response.body)["versions"]


@pytest.mark.integration
@pytest.mark.usefixtures("worker_survives")
@pytest.mark.parametrize(
    ("target", "expect"),
    [
        (b"/_matrix/client/v3/rooms/%FF/state/a", "json400"),
        (b"/_matrix/client/v3/rooms/%C0%AE/state/a", "json400"),
        (b"/_matrix/client/v3/rooms/\xff/state/a", "gunicorn400"),
        (b"/_matrix/client/v3/rooms/\xc3\xa9/state/a", "gunicorn400"),
        (b"/_matrix/static/%FF", "json404"),
        (b"/_demo/stream?bytes=%FF", "json400"),
        (b"/_demo/hello?name=%FF%3Cscript%3E", "html"),
        (b"/_matrix/client/versions?%%%=%FF", "json200"),
    ],
)
def test_bad_encodings_on_the_wire(hostile_server: Server, target: bytes, expect: str) -> None:
    response = send_raw(hostile_server, request_bytes("GET", target))
    assert not raw_header_problems(response)
    if expect == "gunicorn400":
        assert response.status == 400 and is_gunicorn_rejection(response), response
    elif expect.startswith("json4"):
        assert response.status == int(expect[4:]), response
        raw_json_error(response)
    elif expect == "html":
        assert response.status in (200, 400) and b"<script>" not in response.body
    else:
        assert response.status == 200, response


@pytest.mark.integration
@pytest.mark.usefixtures("worker_survives")
@pytest.mark.parametrize(
    ("method", "expect"),
    [
        ("FOO", 405),
        ("M-SEARCH", 405),
        ("PROPFIND", 405),
        ("get", "gunicorn400"),
        ("A" * 21, "gunicorn400"),
        ("A" * 5000, "gunicorn400"),
        ("G\x00T", "gunicorn400"),
        ("GET\tX", "gunicorn400"),
    ],
)
def test_odd_methods_on_the_wire(hostile_server: Server, method: str, expect: int | str) -> None:
    response = send_raw(hostile_server, request_bytes(method, b"/_demo/echo"))
    if expect == "gunicorn400":
        assert response.status == 400 and is_gunicorn_rejection(response), response
    else:
        assert response.status == expect, response
        assert raw_json_error(response)["errcode"] == "M_UNRECOGNIZED"
        assert response.headers.get("Allow") == "POST, OPTIONS"  # the root answers OPTIONS


@pytest.mark.integration
@pytest.mark.usefixtures("worker_survives")
@pytest.mark.parametrize(
    "lengths",
    [
        [b"2", b"3"],
        [b"2", b"2"],
        [b"abc"],
        [b"-1"],
        [b"+2"],
        [b"1e1"],
        [b"0x2"],
        [b"\xb2"],
        [b"2, 3"],
        [b"99999999999999999999999999"],
    ],
)
def test_bad_content_length_on_the_wire(hostile_server: Server, lengths: list[bytes]) -> None:
    headers = [(b"Content-Length", value) for value in lengths] + [(b"Content-Type", b"application/json")]
    response = send_raw(hostile_server, request_bytes("POST", b"/_demo/echo", headers, b"{}"))
    assert response.status in (400, 413), response
    if not is_gunicorn_rejection(response):
        raw_json_error(response)


@pytest.mark.integration
@pytest.mark.usefixtures("worker_survives")
def test_content_length_with_transfer_encoding_on_the_wire(hostile_server: Server) -> None:
    headers = [(b"Content-Length", b"2"), (b"Transfer-Encoding", b"chunked")]
    response = send_raw(
        hostile_server, request_bytes("POST", b"/_demo/echo", headers, b"2\r\n{}\r\n0\r\n\r\n")
    )
    assert response.status == 400, response


@pytest.mark.integration
@pytest.mark.usefixtures("worker_survives")
@pytest.mark.parametrize(
    "name",
    ["nested-arrays-100000", "nested-objects-100000", "number-1e6-digits", "1e999999", "lone-high-surrogate"],
)
def test_json_bombs_on_the_wire(hostile_server: Server, name: str) -> None:
    data, bound = JSON_BOMBS[name]
    headers = [(b"Content-Length", str(len(data)).encode()), (b"Content-Type", b"application/json")]
    started = time.monotonic()
    response = send_raw(
        hostile_server, request_bytes("POST", b"/_demo/echo", headers, data), timeout=bound + 10
    )
    assert time.monotonic() - started < bound + 1
    assert response.status == 400, response
    assert raw_json_error(response)["errcode"] in ("M_NOT_JSON", "M_BAD_JSON")


@pytest.mark.integration
@pytest.mark.usefixtures("worker_survives")
@pytest.mark.parametrize("endpoint", [b"/_t/echo-cancellable"])
def test_nesting_near_the_recursion_limit_on_the_wire(apps_server: Server, endpoint: bytes) -> None:
    """Under gevent a @cancellable handler parses in a fresh greenlet (a shallow stack) while the
    answer is encoded back in the request's greenlet (gunicorn's frames below it): no depth may
    be accepted by the parser and then fail to encode (RecursionError -> 500)."""
    failures = []
    for depth in range(900, 1001, 4):
        data = _deep(depth, b'{"a":', b"}", b"1")
        headers = [(b"Content-Length", str(len(data)).encode()), (b"Content-Type", b"application/json")]
        response = send_raw(apps_server, request_bytes("POST", endpoint, headers, data))
        if response.status >= 500:
            failures.append(f"depth {depth}: {response.status}")
    assert not failures, failures


_INJECTED = re.compile(rb"^(x-injected|set-cookie: *injected)", re.IGNORECASE | re.MULTILINE)


@pytest.mark.integration
@pytest.mark.usefixtures("worker_survives")
@pytest.mark.parametrize(
    "target",
    [
        b"/_t/redirect?to=/next%0d%0aX-Injected:%201",
        b"/_t/redirect?to=/next%0aSet-Cookie:%20injected=1",
        b"/_t/redirect?to=/next%0d%0a%0d%0a%3Chtml%3E",
        b"/_t/redirect?to=http://example.org%0d%0aX-Injected:%201/",
        b"/_t/redirect?to=http://a%00b/",
        b"/_t/redirect?to=http://%5B::1",
        b"/_t/redirect-bytes?to=/next%0d%0aX-Injected:%201",
        b"/_t/set-header?value=a%0d%0aX-Injected:%201",
        b"/_t/set-header?value=a%00b",
        b"/_t/cookie-redirect?to=/next&cookie=a=1%0d%0aX-Injected:%201",
        b"/_t/cookie-redirect?to=/next&cookie=a=1%00",
    ],
)
def test_header_injection_on_the_wire(apps_server: Server, target: bytes) -> None:
    raw = raw_request(apps_server, request_bytes("GET", target), timeout=5)
    head = raw.partition(b"\r\n\r\n")[0]
    assert raw.startswith(b"HTTP/1.1 "), raw[:200]
    status = int(raw.split(b" ", 2)[1])
    assert status < 500, raw[:400]
    assert not _INJECTED.search(head), head


@pytest.mark.integration
@pytest.mark.parametrize(
    "target",
    [
        b"/_t/set-header?value=a%0d%0aX-Injected:%201",
        b"/_t/set-header?value=a%0aX-Injected:%201",
        b"/_t/redirect?to=/next%0d%0aX-Injected:%201",
        b"/_t/cookie-redirect?to=/next&cookie=a=1%0d%0aX-Injected:%201",
    ],
)
def test_header_injection_on_the_dev_server(apps_dev_server: Server, target: bytes) -> None:
    """Werkzeug's dev server writes header values as given: only synwsgi can stop a split there."""
    raw = raw_request(apps_dev_server, request_bytes("GET", target), timeout=5)
    head = raw.partition(b"\r\n\r\n")[0]
    assert raw.startswith(b"HTTP/1.1 "), raw[:200]
    assert not _INJECTED.search(head), head.decode("latin-1")
