"""`TwistedRequest`: a synwsgi request answering Twisted's and Synapse's request attributes.

For `Site(request_class=TwistedRequest)`, so that servlet code written for
Synapse's `SynapseRequest` (a `twisted.web` request) runs unmodified. It is
opt-in because two names differ from Werkzeug's:

* `path` is **bytes** here, the raw (percent-encoded) path as Twisted has
  it (Synapse calls `request.path.decode()` and `request.path.startswith(b"...")`);
  Werkzeug's decoded text path stays available as `text_path`, and Werkzeug's
  `url`, `base_url` and `full_path` are built on it;
* `method` is a `str` (synwsgi and Werkzeug compare it with text) that also
  answers `.decode()`, as Twisted's bytes method does.

`request.args` is synwsgi's: Twisted's `dict[bytes, list[bytes]]` shape,
which Synapse's `parse_*` helpers read.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, overload

from twisted.internet.address import IPv4Address, IPv6Address
from werkzeug.sansio.utils import get_current_url
from werkzeug.utils import cached_property

from synwsgi.config import DEFAULT_CONFIG, ServerConfig
from synwsgi.request import SynapseRequest

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment


def _text(value: str | bytes) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else value


class HttpMethod(str):
    """The request method: text for synwsgi, and `.decode()` for code written for
    Twisted's bytes method (Synapse's `request.method.decode("utf-8")`)."""

    __slots__ = ()

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        return str(self)


@dataclass(frozen=True, slots=True)
class RequestInfo:
    """Synapse's `RequestInfo`: who made the request, as login records it."""

    user_agent: str | None
    ip: str


class TwistedResponseHeaders:
    """Twisted's `request.responseHeaders`, over the headers the handler set.

    Reads and writes the request's `response_headers`, which synwsgi merges
    into whatever response goes out.
    """

    __slots__ = ("_request",)

    def __init__(self, request: SynapseRequest) -> None:
        self._request = request

    def _headers(self) -> list[tuple[str, str]]:
        if self._request.response_headers is None:
            self._request.response_headers = []
        return self._request.response_headers

    def hasHeader(self, name: str | bytes) -> bool:
        key = _text(name).lower()
        return any(k.lower() == key for k, _ in self._headers())

    @overload
    def getRawHeaders(self, name: bytes, default: Any = None) -> list[bytes] | Any: ...
    @overload
    def getRawHeaders(self, name: str, default: Any = None) -> list[str] | Any: ...
    def getRawHeaders(self, name: str | bytes, default: Any = None) -> Any:
        key = _text(name).lower()
        values = [v for k, v in self._headers() if k.lower() == key]
        if not values:
            return default
        return [v.encode("latin-1") for v in values] if isinstance(name, bytes) else values

    def removeHeader(self, name: str | bytes) -> None:
        key = _text(name).lower()
        self._headers()[:] = [(k, v) for k, v in self._headers() if k.lower() != key]

    def setRawHeaders(self, name: str | bytes, values: Iterable[str | bytes]) -> None:
        self.removeHeader(name)
        self._request.add_response_headers((_text(name), _text(value)) for value in values)

    def addRawHeader(self, name: str | bytes, value: str | bytes) -> None:
        self._request.add_response_headers(((_text(name), _text(value)),))


class TwistedRequest(SynapseRequest):
    """A `SynapseRequest` with the Twisted/Synapse request surface servlets read."""

    #: set by Synapse's auth alongside `requester`, read by its log records
    authenticated_entity: str | None = None

    def __init__(
        self,
        environ: WSGIEnvironment,
        raw_path: str | None = None,
        request_id: str | None = None,
        config: ServerConfig = DEFAULT_CONFIG,
        prepath: str = "",
    ) -> None:
        super().__init__(environ, raw_path, request_id, config, prepath)
        self.method = HttpMethod(self.method)

    @cached_property
    def path(self) -> bytes:  # type: ignore[override]
        """The raw path as Twisted has it: bytes, still percent-encoded, no query."""
        return self.raw_path.encode("latin-1")

    @cached_property
    def text_path(self) -> str:
        """Werkzeug's `path`: percent-decoded text."""
        path_info = str(self.environ.get("PATH_INFO") or "")
        return "/" + path_info.encode("latin-1").decode("utf-8", "replace").lstrip("/")

    # Werkzeug's properties built on its text `path`, built on `text_path` here.

    @cached_property
    def full_path(self) -> str:
        return f"{self.text_path}?{self.query_string.decode()}"

    @cached_property
    def url(self) -> str:
        return get_current_url(self.scheme, self.host, self.root_path, self.text_path, self.query_string)

    @cached_property
    def base_url(self) -> str:
        return get_current_url(self.scheme, self.host, self.root_path, self.text_path)

    @cached_property
    def responseHeaders(self) -> TwistedResponseHeaders:
        return TwistedResponseHeaders(self)

    @cached_property
    def clientproto(self) -> bytes:
        return str(self.environ.get("SERVER_PROTOCOL", "HTTP/1.1")).encode("latin-1")

    def getClientAddress(self) -> IPv4Address | IPv6Address:  # type: ignore[override]
        """The peer as Twisted's address object (after `ProxyFix` when `behind_proxy`)."""
        host = self.environ.get("REMOTE_ADDR") or "0.0.0.0"
        # gunicorn's gevent worker gives the port as an int, the others as text.
        port = str(self.environ.get("REMOTE_PORT") or "")
        number = int(port) if port.isdigit() else 0
        try:
            is_v6 = ipaddress.ip_address(host).version == 6
        except ValueError:
            is_v6 = False
        if is_v6:
            return IPv6Address("TCP", host, number)
        return IPv4Address("TCP", host, number)

    def get_client_ip_if_available(self) -> str:
        return str(self.getClientAddress().host)

    def request_info(self) -> RequestInfo:
        return RequestInfo(user_agent=self.get_user_agent("") or None, ip=self.get_client_ip_if_available())

    @property
    def _disconnected(self) -> bool:
        """Synapse's flag: whether the client is known to have gone (watched for `@cancellable`)."""
        scope = self.cancel_scope
        return scope is not None and scope.disconnected

    def isSecure(self) -> bool:
        return self.scheme == "https"

    def redirect(self, url: str | bytes) -> None:
        """Twisted's `redirect`: a 302 to `url` (sent when the handler returns)."""
        self.setResponseCode(302)
        self.setHeader("Location", _text(url))
