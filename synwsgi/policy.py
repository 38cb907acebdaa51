"""The header policy: which CORS, CORP, anti-framing and cache headers a response gets.

Decided here, by the kind of response and the config, and applied once, by
the `Site`, just before the status line goes out (Starlette's CORS
middleware: headers built once, applied at one choke point). Response
builders set only what describes their body (type, length, location); a
handler that wants more asks with `set_cors_headers(request)` and friends,
which the `Site` merges after the policy, replacing rather than repeating.

Every header set is a list built once per (kind, CORS variant) and never
changed; applying one to a response built by synwsgi is one list
concatenation, into a new list (the response itself may be shared by every
request). A response that a handler built itself (Werkzeug's, any WSGI app)
only gets the headers it does not already carry, so each header appears
exactly once.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from ._internal.headers import (
    CLICKJACKING_HEADERS,
    CORP_HEADERS,
    CORS_HEADERS,
    CORS_HEADERS_MSC3886,
    CORS_HEADERS_MSC4108,
    NO_CACHE,
    Header,
)
from .config import ServerConfig

# Synapse answers the MSC4108 rendezvous endpoints with their own CORS variant.
_MSC4108_RENDEZVOUS = "/_matrix/client/unstable/org.matrix.msc4108/rendezvous"
_MSC4108_SESSIONS = "/_synapse/client/rendezvous"


class Kind:
    """What a response is, as far as its headers go; one instance per kind, below.

    Each kind holds its header sets, built once at import: without CORS, and
    with each CORS variant (by the variant's identity). They are lists, never
    changed: `list + list` is the cheapest way to a new list of both (a
    tuple would need `[*headers, *extra]`, two extends into a growing list).
    """

    __slots__ = ("cors", "name", "plain", "with_cors")

    JSON: ClassVar[Kind]
    JSON_NO_CORS: ClassVar[Kind]
    OPTIONS: ClassVar[Kind]
    HTML: ClassVar[Kind]
    REDIRECT: ClassVar[Kind]
    REDIRECT_CORS: ClassVar[Kind]
    STATIC: ClassVar[Kind]
    MEDIA: ClassVar[Kind]
    METRICS: ClassVar[Kind]

    def __init__(
        self,
        name: str,
        *,
        cors: bool = False,
        no_cache: bool = False,
        framing: bool = False,
        corp: bool = False,
    ) -> None:
        self.name = name
        self.cors = cors
        base: tuple[Header, ...] = (NO_CACHE,) if no_cache else ()
        tail = (CORP_HEADERS if corp else ()) + (CLICKJACKING_HEADERS if framing else ())
        self.plain = [*base, *tail]
        #: the header set with each CORS variant, by the variant's `id()`
        self.with_cors = {
            id(variant): [*base, *variant, *tail]
            for variant in ((), CORS_HEADERS, CORS_HEADERS_MSC3886, CORS_HEADERS_MSC4108)
        }

    def __repr__(self) -> str:
        return f"Kind.{self.name}"


#: a JSON API answer (results and errors): CORS, never cached
Kind.JSON = Kind("JSON", cors=True, no_cache=True)
#: JSON from `respond_with_json(..., send_cors=False)`, Synapse's default there
Kind.JSON_NO_CORS = Kind("JSON_NO_CORS", no_cache=True)
#: the CORS preflight answer
Kind.OPTIONS = Kind("OPTIONS", cors=True)
#: an HTML page: must not be framed
Kind.HTML = Kind("HTML", framing=True)
#: a redirect (it carries a one-link HTML page: must not be framed)
Kind.REDIRECT = Kind("REDIRECT", framing=True)
#: `respond_with_redirect(..., cors=True)`
Kind.REDIRECT_CORS = Kind("REDIRECT_CORS", cors=True, framing=True)
#: a static file: must not be framed, may be cached (ETag/Last-Modified)
Kind.STATIC = Kind("STATIC", framing=True)
#: media a browser may embed cross-origin (CORS + CORP)
Kind.MEDIA = Kind("MEDIA", cors=True, corp=True)
#: Prometheus text: for scrapers, nothing added
Kind.METRICS = Kind("METRICS")


def cors_headers(config: ServerConfig, raw_path: str = "") -> tuple[Header, ...]:
    """The CORS headers `config` asks for on `raw_path`: none, Synapse's, or an MSC variant."""
    if not config.send_cors:
        return ()
    if raw_path == _MSC4108_RENDEZVOUS or raw_path.startswith(_MSC4108_SESSIONS):
        return CORS_HEADERS_MSC4108
    return CORS_HEADERS_MSC3886 if config.experimental_cors_msc3886 else CORS_HEADERS


def apply(
    headers: list[Header], kind: Kind | None, default: Kind, config: ServerConfig, raw_path: str
) -> list[Header]:
    """A new list: `headers` plus what the policy gives a response of `kind` (`default` when None).

    `headers` is never changed: it belongs to a response that may be shared
    by every request. A response built by synwsgi's factory says its kind
    and never carries a policy header: it gets the whole set. One a handler
    built itself (kind None) only gets the headers it lacks.
    """
    trusted = kind is not None
    if kind is None:
        kind = default
    extra = kind.with_cors[id(cors_headers(config, raw_path))] if kind.cors else kind.plain
    if trusted:
        return headers + extra
    present = {name.lower() for name, _ in headers}
    return headers + [header for header in extra if header[0].lower() not in present]


def merge(headers: list[Header], extra: Iterable[Header]) -> list[Header]:
    """`headers` with each of `extra` replacing every header of its name
    (`headers` may be extended: pass a list the caller owns).

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
