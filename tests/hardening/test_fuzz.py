"""Property-based fuzzing of the whole showcase app (`wsgi.app`) through the test `Client`.

Random methods, raw request targets (percent-encoded or not, from an alphabet
with `%`, `/`, dots, controls and non-ASCII), headers and bodies. Invariants:

* the status is < 500 (the deliberate `/_demo/error/crash` is left out);
* every header is well formed (no CR/LF/controls);
* a JSON response carries each CORS header exactly once, and a JSON error
  an object with an `errcode`; errors are JSON but on HTML resources;
* HEAD answers have an empty body and the status GET would have;
* `/_demo/echo` returns exactly `canonicaljson.encode_canonical_json` of the
  object it was sent; a path parameter comes back as it was percent-encoded.

300 examples per property by default (`--fuzz-examples N`,
`SYNWSGI_FUZZ_EXAMPLES=N`); `python -m stress.fuzz_campaign --examples 100000`
runs the long campaign on the same properties.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote, unquote

import canonicaljson
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from werkzeug.test import Client, TestResponse

import wsgi

from . import _fuzzconf
from ._util import check_invariants, open_raw

#: Requests sent by the properties of this module (read by stress/fuzz_campaign.py).
REQUESTS = 0

CLIENT = Client(wsgi.app)

HTML_PREFIXES = ("/_demo/hello", "/_demo/html-error", "/_demo/redirect")


def fuzz_settings(**overrides: Any) -> settings:
    return settings(
        max_examples=_fuzzconf.EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
        **overrides,
    )


def send(method: str, target: str, **kwargs: Any) -> TestResponse:
    global REQUESTS
    REQUESTS += 1
    return open_raw(CLIENT, method, target, **kwargs)


# -- strategies --------------------------------------------------------------------------------

TOKEN_CHARS = "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
methods = st.one_of(
    st.sampled_from(
        ["GET", "GET", "GET", "HEAD", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE", "CONNECT"]
    ),
    st.sampled_from(["FOO", "get", "Get", "M-SEARCH", "PROPFIND", "BREW", "A" * 300]),
    st.text(TOKEN_CHARS, min_size=1, max_size=12),
)

PREFIXES = [
    "",
    "/",
    "/_matrix",
    "/_matrix/client",
    "/_matrix/client/versions",
    "/_matrix/client/v3/rooms/",
    "/_matrix/client/v3/rooms/!r:x/state/m.room.name",
    "/_matrix/client/v3/rooms/!r:x/send/m.room.message/",
    "/_matrix/static",
    "/_matrix/static/",
    "/_matrix/static/index.html",
    "/_demo",
    "/_demo/echo",
    "/_demo/error/",
    "/_demo/error/forbidden",
    "/_demo/error/ratelimit",
    "/_demo/error/notfound",
    "/_demo/stream",
    "/_demo/large",
    "/_demo/stats",
    "/_demo/hello",
    "/_demo/html-error",
    "/_demo/redirect",
    "/metrics",
    "http://example.org/_matrix/client/versions",
    "//",
]
PATH_PIECES = st.one_of(
    st.sampled_from(
        [
            "/",
            "//",
            ".",
            "..",
            "%",
            "%%",
            "%2F",
            "%2f",
            "%2E",
            "%2e%2e",
            "%FF",
            "%C3%A9",
            "%C0%AE",
            "%00",
            "%0d%0a",
            "%20",
            "%3F",
            "%23",
            "%25",
            "%E2%98%83",
            "\\",
            "~",
            ";",
            ":",
            "@",
            "!",
            "state",
            "send",
            "rooms",
            "echo",
            "index.html",
            "a",
            "Z9",
            "é",
            "☃",
            "\u2028",
            "\x7f",
            "\x00",
            "\t",
            " ",
            "\xff",
        ]
    ),
    st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=4),
)
paths = st.builds(
    lambda prefix, pieces: prefix + "".join(pieces),
    st.sampled_from(PREFIXES),
    st.lists(PATH_PIECES, max_size=6),
)
QUERY_KEYS = ["bytes", "items", "seconds", "name", "access_token", "client_secret", "x", "", "%FF", "a%3Db"]
QUERY_VALUES = st.one_of(
    st.sampled_from(
        ["0", "1", "10", "-1", "9999", "%FF", "%00", "", "1e3", "nan", "<b>", "%3Cscript%3E", "é"]
    ),
    st.text("0123456789-%FfAa&=.+ é", max_size=4),
)
queries = st.lists(st.tuples(st.sampled_from(QUERY_KEYS), QUERY_VALUES), max_size=4).map(
    lambda pairs: "&".join(f"{key}={value}" for key, value in pairs)
)
HEADER_NAMES = [
    "Content-Type",
    "Accept",
    "Origin",
    "Authorization",
    "Range",
    "If-None-Match",
    "If-Modified-Since",
    "X-Forwarded-For",
    "X-Forwarded-Proto",
    "Cookie",
    "Access-Control-Request-Method",
    "Access-Control-Request-Headers",
    "Accept-Encoding",
    "X-Random",
]
# Header values a server can hand on: latin-1 text without CR/LF.
header_values = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=40)
headers = st.lists(st.tuples(st.sampled_from(HEADER_NAMES), header_values), max_size=4)
bodies = st.one_of(
    st.none(),
    st.binary(max_size=200),
    st.sampled_from([b"{}", b"[]", b'{"a":1}', b"null", b'{"a":', b"\xff\xfe", b'{"a":1e999}', b'"\\ud800"']),
)


def _decoded(target: str) -> str:
    path = target.partition("?")[0]
    if path.startswith("http://"):
        path = "/" + path[len("http://") :].partition("/")[2]
    return unquote(
        path.encode("utf-8", "surrogatepass").decode("latin-1"), encoding="utf-8", errors="replace"
    )


def _wire(text: str) -> str:
    """Non-ASCII as its UTF-8 bytes, as a server passes a raw target on (latin-1 text)."""
    return text.encode("utf-8", "surrogatepass").decode("latin-1")


def _excluded(decoded_path: str) -> bool:
    # The deliberate 500, and endpoints whose cost is their parameter (sleeping).
    return decoded_path.startswith(("/_demo/error/crash", "/_demo/slow"))


# -- properties ---------------------------------------------------------------------------------


@fuzz_settings()
@given(method=methods, path=paths, query=queries, request_headers=headers, body=bodies)
def test_any_request_keeps_the_invariants(
    method: str, path: str, query: str, request_headers: list[tuple[str, str]], body: bytes | None
) -> None:
    target = _wire(path) + (f"?{_wire(query)}" if query else "")
    decoded = _decoded(target)
    assume(not _excluded(decoded))
    response = send(method, target, headers=request_headers, body=body)
    check_invariants(response, method, html_ok=decoded.startswith(HTML_PREFIXES))
    response.close()


@fuzz_settings()
@given(path=paths, query=queries)
def test_head_answers_like_get_without_a_body(path: str, query: str) -> None:
    target = _wire(path) + (f"?{_wire(query)}" if query else "")
    assume(not _excluded(_decoded(target)))
    get = send("GET", target)
    head = send("HEAD", target)
    check_invariants(head, "HEAD", html_ok=True)
    assert head.data == b""
    assert head.status_code == get.status_code, (target, get.status, head.status)
    assert head.headers.get("Content-Type") == get.headers.get("Content-Type")


json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([1e-7, 2.5e-05, 1e16, 1.5e300, -0.0, 0.1, 123456789012345678901234567890]),
    st.text(),
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(), children, max_size=5),
    max_leaves=30,
)
json_objects = st.dictionaries(st.text(), json_values, max_size=8)


@fuzz_settings()
@given(obj=json_objects, ensure_ascii=st.booleans(), indent=st.sampled_from([None, 0, 2]))
def test_echo_returns_canonical_json_of_its_input(
    obj: dict[str, Any], ensure_ascii: bool, indent: int | None
) -> None:
    data = json.dumps(obj, ensure_ascii=ensure_ascii, indent=indent).encode("utf-8")
    response = send("POST", "/_demo/echo", body=data, headers=[("Content-Type", "application/json")])
    check_invariants(response, "POST")
    assert response.status_code == 200, response.data[:300]
    assert response.data == canonicaljson.encode_canonical_json(json.loads(data))


# JSON text with \u escapes anywhere a string goes, lone surrogates included.
escapes = st.lists(
    st.one_of(
        st.integers(min_value=0, max_value=0xFFFF).map(lambda cp: f"\\u{cp:04x}"),
        st.sampled_from(["\\ud83d\\ude00", "\\ud800", "\\udfff", "\\n", "\\\\", '\\"', "a", "é"]),
    ),
    max_size=6,
).map("".join)


@fuzz_settings()
@given(key=escapes, value=escapes)
def test_echo_of_escaped_strings_is_canonical_or_a_400(key: str, value: str) -> None:
    data = f'{{"{key}": "{value}", "k": ["{value}"]}}'.encode()
    parsed = json.loads(data)
    try:
        expected: bytes | None = canonicaljson.encode_canonical_json(parsed)
    except (UnicodeEncodeError, ValueError):
        expected = None  # canonicaljson cannot encode it (a lone surrogate): the app must refuse it
    response = send("POST", "/_demo/echo", body=data, headers=[("Content-Type", "application/json")])
    body = check_invariants(response, "POST")
    if expected is None:
        assert response.status_code == 400 and body["errcode"] in ("M_NOT_JSON", "M_BAD_JSON"), body
    else:
        assert (response.status_code, response.data) == (200, expected)


@fuzz_settings()
@given(room_id=st.text(min_size=1, max_size=20), event_type=st.text(min_size=1, max_size=10))
def test_path_parameters_come_back_as_sent(room_id: str, event_type: str) -> None:
    target = ROOM_STATE.format(quote(room_id, safe=""), quote(event_type, safe=""))
    response = send("GET", target)
    body = check_invariants(response, "GET")
    assert response.status_code == 200, body
    assert (body["room_id"], body["event_type"]) == (room_id, event_type)


ROOM_STATE = "/_matrix/client/v3/rooms/{}/state/{}"


@fuzz_settings()
@given(raw=st.binary(min_size=1, max_size=12))
def test_percent_encoded_bytes_in_a_parameter_are_utf8_or_400(raw: bytes) -> None:
    response = send("GET", ROOM_STATE.format(quote(raw, safe=""), "t"))
    body = check_invariants(response, "GET")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        assert response.status_code == 400 and body["errcode"] == "M_INVALID_PARAM", body
    else:
        assert response.status_code == 200 and body["room_id"] == text, body


PROPERTIES = [
    test_any_request_keeps_the_invariants,
    test_head_answers_like_get_without_a_body,
    test_echo_returns_canonical_json_of_its_input,
    test_echo_of_escaped_strings_is_canonical_or_a_400,
    test_path_parameters_come_back_as_sent,
    test_percent_encoded_bytes_in_a_parameter_are_utf8_or_400,
]
