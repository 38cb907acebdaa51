"""The header policy: which CORS, CORP, anti-framing and cache headers a response gets.

Decided here, by the kind of response and the config, and applied once, by
the `Site`, just before the status line goes out (Starlette's CORS
middleware: headers built once, applied at one choke point). Response
builders set only what describes their body (type, length, location); a
handler that wants more asks with `set_cors_headers(request)` and friends,
which the `Site` merges after the policy, replacing rather than repeating.

Every header set is a tuple built once per (kind, CORS variant); applying
one to a response built by synwsgi is a list extend. A response that a
handler built itself (Werkzeug's, any WSGI app) only gets the headers it
does not already carry, so each header appears exactly once.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Iterable

from .config import ServerConfig
from .headers import (
    CLICKJACKING_HEADERS,
    CORP_HEADERS,
    CORS_HEADERS,
    CORS_HEADERS_MSC3886,
    CORS_HEADERS_MSC4108,
    NO_CACHE,
    Header,
)

# Synapse answers the MSC4108 rendezvous endpoints with their own CORS variant.
_MSC4108_PATHS = ("/_matrix/client/unstable/org.matrix.msc4108/rendezvous", "/_synapse/client/rendezvous")


class Kind(enum.Enum):
    """What a response is, as far as its headers go."""

    #: a JSON API answer (results and errors): CORS, never cached
    JSON = "json"
    #: JSON from `respond_with_json(..., send_cors=False)`, Synapse's default there
    JSON_NO_CORS = "json_no_cors"
    #: the CORS preflight answer
    OPTIONS = "options"
    #: an HTML page: must not be framed
    HTML = "html"
    #: a redirect (it carries a one-link HTML page: must not be framed)
    REDIRECT = "redirect"
    #: `respond_with_redirect(..., cors=True)`
    REDIRECT_CORS = "redirect_cors"
    #: a static file: must not be framed, may be cached (ETag/Last-Modified)
    STATIC = "static"
    #: media a browser may embed cross-origin (CORS + CORP)
    MEDIA = "media"
    #: Prometheus text: for scrapers, nothing added
    METRICS = "metrics"


_CORS_KINDS = frozenset((Kind.JSON, Kind.OPTIONS, Kind.REDIRECT_CORS, Kind.MEDIA))
_FRAMING_KINDS = frozenset((Kind.HTML, Kind.REDIRECT, Kind.REDIRECT_CORS, Kind.STATIC))
_NO_CACHE_KINDS = frozenset((Kind.JSON, Kind.JSON_NO_CORS))


def cors_headers(config: ServerConfig, raw_path: str = "") -> tuple[Header, ...]:
    """The CORS headers `config` asks for on `raw_path`: none, Synapse's, or an MSC variant."""
    if not config.send_cors:
        return ()
    if raw_path.startswith(_MSC4108_PATHS) and _is_msc4108_path(raw_path):
        return CORS_HEADERS_MSC4108
    return CORS_HEADERS_MSC3886 if config.experimental_cors_msc3886 else CORS_HEADERS


def _is_msc4108_path(raw_path: str) -> bool:
    return raw_path == _MSC4108_PATHS[0] or raw_path.startswith(_MSC4108_PATHS[1])


@functools.cache
def _header_set(kind: Kind, cors: tuple[Header, ...]) -> tuple[Header, ...]:
    headers: list[Header] = []
    if kind in _NO_CACHE_KINDS:
        headers.append(NO_CACHE)
    if kind in _CORS_KINDS:
        headers.extend(cors)
    if kind is Kind.MEDIA:
        headers.extend(CORP_HEADERS)
    if kind in _FRAMING_KINDS:
        headers.extend(CLICKJACKING_HEADERS)
    return tuple(headers)


def policy_headers(kind: Kind, config: ServerConfig, raw_path: str) -> tuple[Header, ...]:
    """The headers a response of `kind` gets (a shared tuple: never mutate it)."""
    return _header_set(kind, cors_headers(config, raw_path) if kind in _CORS_KINDS else ())


def apply(headers: list[Header], extra: Iterable[Header], trusted: bool) -> list[Header]:
    """`headers` plus the policy's `extra`.

    `trusted`: the response was built by synwsgi's factory, which never sets
    a policy header, so there is nothing to check.
    """
    if trusted:
        headers.extend(extra)
        return headers
    present = {name.lower() for name, _ in headers}
    headers.extend(header for header in extra if header[0].lower() not in present)
    return headers


def merge(headers: list[Header], extra: Iterable[Header]) -> list[Header]:
    """`headers` with each of `extra` replacing every header of its name.

    For headers a handler set on the request: the last value given for a
    name wins; `Set-Cookie` values all stay.
    """
    merged = headers
    for name, value in extra:
        lname = name.lower()
        if lname != "set-cookie":
            merged = [(k, v) for k, v in merged if k.lower() != lname]
        merged.append((name, value))
    return merged
