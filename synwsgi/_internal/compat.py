"""Synapse's (Twisted's) spellings on the request, for servlet code ported as it is.

A mixin of `SynapseRequest`: each name costs nothing until a servlet uses it.
Twisted speaks bytes; these accept bytes or str and answer in the type they
were asked in, so `request.getHeader(b"User-Agent")` and
`request.getHeader("User-Agent")` both work.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, AnyStr, overload

from werkzeug.utils import cached_property

from .paths import redact_uri

if TYPE_CHECKING:
    from werkzeug.datastructures import Headers

    from ..config import ServerConfig
    from .headers import Header


def _text(value: str | bytes) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else value


@dataclass(frozen=True, slots=True)
class ClientAddress:
    """Twisted's `IPv4Address`/`IPv6Address` as far as servlets use it."""

    host: str
    port: int
    type: str = "TCP"


class RequestHeaders:
    """Twisted's `request.requestHeaders`: raw header values by name."""

    __slots__ = ("_headers",)

    def __init__(self, headers: Headers) -> None:
        self._headers = headers

    @overload
    def getRawHeaders(self, name: bytes, default: Any = None) -> list[bytes] | Any: ...
    @overload
    def getRawHeaders(self, name: str, default: Any = None) -> list[str] | Any: ...
    def getRawHeaders(self, name: str | bytes, default: Any = None) -> Any:
        values = self._headers.getlist(_text(name))
        if not values:
            return default
        return [v.encode("latin-1") for v in values] if isinstance(name, bytes) else values

    def hasHeader(self, name: str | bytes) -> bool:
        return _text(name) in self._headers


class SynapseRequestCompat:
    """Twisted/Synapse request methods; mixed into `SynapseRequest`."""

    # Provided by SynapseRequest / werkzeug.Request.
    environ: dict[str, Any]
    method: str
    raw_path: str
    request_id: str
    config: ServerConfig
    headers: Headers
    code: int
    _written: list[bytes] | None
    handler_finished: bool

    def add_response_headers(self, headers: Iterable[Header]) -> None:
        raise NotImplementedError

    # -- response ------------------------------------------------------------------

    def setHeader(self, name: AnyStr, value: AnyStr) -> None:
        """Set a response header; it replaces any of that name the response has."""
        self.add_response_headers(((_text(name), _text(value)),))

    def setResponseCode(self, code: int) -> None:
        """The status to answer with: the one writer of the response status."""
        self.code = int(code)

    def write(self, data: bytes) -> None:
        """Buffer `data` as (part of) the response body, sent when the handler returns."""
        if self._written is None:
            self._written = []
        self._written.append(data)

    def finish(self) -> None:
        """Mark the response complete (it goes out when the handler returns)."""
        self.handler_finished = True

    def written(self) -> bytes | None:
        """What `write()` buffered, or None when neither `write()` nor `finish()` was called."""
        if self._written is None and not self.handler_finished:
            return None
        return b"".join(self._written or ())

    # -- request -------------------------------------------------------------------

    @overload
    def getHeader(self, key: bytes) -> bytes | None: ...
    @overload
    def getHeader(self, key: str) -> str | None: ...
    def getHeader(self, key: str | bytes) -> str | bytes | None:
        """The request header `key` (Twisted's `getHeader` reads the request)."""
        value = self.headers.get(_text(key))
        if value is None or isinstance(key, str):
            return value
        return value.encode("latin-1")

    @cached_property
    def requestHeaders(self) -> RequestHeaders:
        return RequestHeaders(self.headers)

    def getClientAddress(self) -> ClientAddress:
        """The peer's address (after `ProxyFix` when `behind_proxy`)."""
        # gunicorn's gevent worker gives the port as an int, other servers as a str.
        port = str(self.environ.get("REMOTE_PORT") or "")
        return ClientAddress(self.environ.get("REMOTE_ADDR") or "", int(port) if port.isdigit() else 0)

    def getClientIP(self) -> str:
        return self.getClientAddress().host

    def get_user_agent(self, default: str) -> str:
        """The User-Agent, or `default` when the client sent none."""
        return self.environ.get("HTTP_USER_AGENT") or default

    def get_method(self) -> str:
        return self.method

    def get_request_id(self) -> str:
        return self.request_id

    def get_redacted_uri(self) -> str:
        """The request URI with `access_token` and `client_secret` values hidden."""
        return redact_uri(self.raw_path, self.environ.get("QUERY_STRING", ""))

    @cached_property
    def uri(self) -> bytes:
        """The raw request target (path and query), as Twisted's `request.uri`."""
        query = self.environ.get("QUERY_STRING", "")
        target = self.raw_path + ("?" + query if query else "")
        return target.encode("latin-1")
