"""The fixed header sets Synapse sends, computed once at import.

Kept as tuples of `(name, value)` so a response can extend its header list
with them without building anything per request.
"""

from __future__ import annotations

import re
from urllib.parse import quote

Header = tuple[str, str]

_ALLOW_ORIGIN: Header = ("Access-Control-Allow-Origin", "*")
_ALLOW_METHODS: Header = ("Access-Control-Allow-Methods", "GET, HEAD, POST, PUT, DELETE, OPTIONS")

CORS_HEADERS: tuple[Header, ...] = (
    _ALLOW_ORIGIN,
    _ALLOW_METHODS,
    ("Access-Control-Allow-Headers", "X-Requested-With, Content-Type, Authorization, Date"),
    ("Access-Control-Expose-Headers", "Synapse-Trace-Id, Server"),
)

# MSC3886 (simple rendezvous) needs conditional-request headers in and out.
CORS_HEADERS_MSC3886: tuple[Header, ...] = (
    _ALLOW_ORIGIN,
    _ALLOW_METHODS,
    (
        "Access-Control-Allow-Headers",
        "X-Requested-With, Content-Type, Authorization, Date, If-Match, If-None-Match",
    ),
    ("Access-Control-Expose-Headers", "ETag, Location, X-Max-Bytes"),
)

# MSC4108 (QR-code login rendezvous): Synapse's own variant on those paths.
CORS_HEADERS_MSC4108: tuple[Header, ...] = (
    _ALLOW_ORIGIN,
    _ALLOW_METHODS,
    ("Access-Control-Allow-Headers", "Content-Type, If-Match, If-None-Match"),
    ("Access-Control-Expose-Headers", "Synapse-Trace-Id, Server, ETag"),
)

CORP_HEADERS: tuple[Header, ...] = (("Cross-Origin-Resource-Policy", "cross-origin"),)

CLICKJACKING_HEADERS: tuple[Header, ...] = (
    ("X-Frame-Options", "DENY"),
    ("Content-Security-Policy", "frame-ancestors 'none';"),
)

JSON_CONTENT_TYPE: Header = ("Content-Type", "application/json")
HTML_CONTENT_TYPE: Header = ("Content-Type", "text/html; charset=utf-8")
NO_CACHE: Header = ("Cache-Control", "no-cache, no-store, must-revalidate")


_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_UNSAFE_IN_VALUE = re.compile(r"[^\t\x20-\x7e]+")
# RFC 3986's reserved and unreserved characters, and "%" for escapes already made.
_URI_SAFE = "!#$%&'()*+,-./:;=?@[]~_"


def safe_header(name: str, value: str) -> Header:
    """A header whose value, even if it came from input, cannot split the header block.

    Anything but visible ASCII and tabs (CR, LF, NUL, DEL, NEL, U+2028, any
    non-ASCII) is percent-encoded as UTF-8. The name must be an HTTP token.
    """
    if not _TOKEN.fullmatch(name):
        raise ValueError(f"invalid header name {name!r}")
    if not (value.isascii() and value.isprintable()):
        value = _UNSAFE_IN_VALUE.sub(lambda m: quote(m.group(), safe=""), value)
    return name, value


def safe_location(url: str | bytes) -> str:
    """`url` as a URI fit for `Location`: every character outside RFC 3986's
    sets (controls, spaces, non-ASCII) percent-encoded, so a redirect target
    built from input can neither split the header block nor fail to encode."""
    text = url.decode("utf-8", "replace") if isinstance(url, bytes) else url
    return quote(text, safe=_URI_SAFE)
