"""The response factory: JSON, HTML, redirect and preflight responses.

`Response` is the smallest thing a WSGI server can send (a status, a header
list and a body) plus its `Kind`, from which `policy` adds the CORS and
framing headers at the one place responses leave. The builders here only
describe the body (type, length, location). The `respond_with_*` functions
keep Synapse's spelling: they store the response on the request, which the
pipeline sends when the handler returns, with the status the request has
then (`request.setResponseCode` is the status's one writer).
"""

from __future__ import annotations

import html
import logging
from collections.abc import Iterable
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Protocol

from ._internal import headers as h
from .cancellation import HTTP_STATUS_REQUEST_CANCELLED
from .jsonenc import encode_canonical_json, encode_json
from .policy import Kind, cors_headers

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

    from .config import ServerConfig


class Responder(Protocol):
    """What `respond_with_*` need of a request: `SynapseRequest`, which comes after this module."""

    config: ServerConfig
    raw_path: str

    def setResponseCode(self, code: int) -> None: ...
    def respond(self, response: Response) -> None: ...
    def add_response_headers(self, headers: Iterable[h.Header]) -> None: ...
    def finish(self) -> None: ...


logger = logging.getLogger(__name__)

Body = bytes | Iterable[bytes]

_STATUS_LINES = {int(s): f"{int(s)} {s.phrase}" for s in HTTPStatus}
_STATUS_LINES[HTTP_STATUS_REQUEST_CANCELLED] = "499 Client Closed Request"


def status_line(code: int) -> str:
    """`200 OK` for 200; unknown codes get a neutral phrase."""
    line = _STATUS_LINES.get(code)
    return line if line is not None else f"{code} Unknown"


class Response:
    """A status code, a header list, a body (bytes or an iterable of bytes) and its kind.

    `kind` None means "whatever the resource that returned it serves": a
    JSON API's response gets the JSON policy, an HTML page's the HTML one.
    A WSGI application in its own right, so it can be returned anywhere a
    Werkzeug `Response` can.
    """

    __slots__ = ("body", "headers", "kind", "status")

    def __init__(
        self, status: int, headers: list[h.Header], body: Body = b"", kind: Kind | None = None
    ) -> None:
        self.status = int(status)
        self.headers = headers
        self.body = body
        self.kind = kind

    def replace(
        self,
        *,
        status: int | None = None,
        headers: list[h.Header] | None = None,
        body: Body | None = None,
    ) -> Response:
        """A new response with the given parts changed: a response is a value the
        pipeline never edits, so one may be shared by every request."""
        return Response(
            self.status if status is None else status,
            self.headers if headers is None else headers,
            self.body if body is None else body,
            self.kind,
        )

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        start_response(status_line(self.status), list(self.headers))
        if environ.get("REQUEST_METHOD") == "HEAD":
            close_body(self.body)
            return []
        return [self.body] if isinstance(self.body, bytes) else self.body


def close_body(body: object) -> None:
    """Call `close()` on a body that has one (PEP 3333 asks that it always runs)."""
    close = getattr(body, "close", None)
    if close is not None:
        close()


# -- JSON -----------------------------------------------------------------------


def json_bytes_response(code: int, json_bytes: bytes, *, send_cors: bool = True) -> Response:
    """A JSON response from bytes already encoded (CORS by the request's config, unless `send_cors=False`)."""
    headers = [h.JSON_CONTENT_TYPE, ("Content-Length", str(len(json_bytes)))]
    return Response(code, headers, json_bytes, Kind.JSON if send_cors else Kind.JSON_NO_CORS)


def json_response(code: int, obj: Any, *, canonical_json: bool = True, send_cors: bool = True) -> Response:
    """A JSON response; canonical JSON unless asked otherwise."""
    body = encode_canonical_json(obj) if canonical_json else encode_json(obj)
    headers = [h.JSON_CONTENT_TYPE, ("Content-Length", str(len(body)))]
    return Response(code, headers, body, Kind.JSON if send_cors else Kind.JSON_NO_CORS)


def json_stream_response(code: int, chunks: Iterable[bytes], *, send_cors: bool = True) -> Response:
    """A JSON response whose body is produced piece by piece (sent chunked)."""
    return Response(code, [h.JSON_CONTENT_TYPE], chunks, Kind.JSON if send_cors else Kind.JSON_NO_CORS)


def options_response() -> Response:
    """The answer to a CORS preflight: 204, no body (the policy adds CORS)."""
    return Response(HTTPStatus.NO_CONTENT, [("Content-Length", "0")], b"", Kind.OPTIONS)


# -- HTML and redirects -----------------------------------------------------------


def html_response(code: int, html_body: str | bytes) -> Response:
    """An HTML page (the policy forbids framing it)."""
    body = html_body.encode("utf-8") if isinstance(html_body, str) else html_body
    return Response(code, [h.HTML_CONTENT_TYPE, ("Content-Length", str(len(body)))], body, Kind.HTML)


def redirect_response(url: str | bytes, status_code: int = HTTPStatus.FOUND, cors: bool = False) -> Response:
    """A redirect, with a one-link HTML page for clients that do not follow it."""
    location = h.safe_location(url)
    body = _REDIRECT_PAGE.format(url=html.escape(location)).encode("ascii")
    headers = [("Location", location), h.HTML_CONTENT_TYPE, ("Content-Length", str(len(body)))]
    return Response(status_code, headers, body, Kind.REDIRECT_CORS if cors else Kind.REDIRECT)


_REDIRECT_PAGE = '<!DOCTYPE html>\n<html lang=en><body><a href="{url}">{url}</a></body></html>\n'

HTML_ERROR_TEMPLATE = """<!DOCTYPE html>
<html lang=en>
  <head>
    <meta charset="utf-8">
    <title>Error {code}</title>
  </head>
  <body>
    <p>{msg}</p>
  </body>
</html>
"""


# -- Synapse's request-oriented spellings --------------------------------------------


def respond_with_json(
    request: Responder,
    code: int,
    json_object: Any,
    send_cors: bool = False,
    canonical_json: bool = True,
) -> None:
    """Answer `request` with `json_object` once the handler returns.

    As in Synapse, CORS headers only with `send_cors=True`.
    """
    request.setResponseCode(code)
    request.respond(json_response(code, json_object, canonical_json=canonical_json, send_cors=send_cors))


def respond_with_json_bytes(
    request: Responder, code: int, json_bytes: bytes, send_cors: bool = False
) -> None:
    """Answer `request` with JSON already encoded."""
    request.setResponseCode(code)
    request.respond(json_bytes_response(code, json_bytes, send_cors=send_cors))


def respond_with_html(request: Responder, code: int, html: str) -> None:
    """Answer `request` with an HTML page (UTF-8)."""
    respond_with_html_bytes(request, code, html.encode("utf-8"))


def respond_with_html_bytes(request: Responder, code: int, html_bytes: bytes) -> None:
    """Answer `request` with an HTML page already encoded as UTF-8."""
    request.setResponseCode(code)
    request.respond(html_response(code, html_bytes))


def respond_with_redirect(
    request: Responder,
    url: str | bytes,
    statusCode: int = HTTPStatus.FOUND,  # noqa: N803 - Synapse's spelling
    cors: bool = False,
) -> None:
    """Redirect to `url` (302 unless `statusCode` says otherwise), with CORS if `cors`."""
    code = statusCode
    logger.debug("Redirect to %s", url.decode("utf-8", "replace") if isinstance(url, bytes) else url)
    request.setResponseCode(code)
    request.respond(redirect_response(url, code, cors))


def set_cors_headers(request: Responder) -> None:
    """Add the CORS headers (for responses whose kind would not have them)."""
    request.add_response_headers(cors_headers(request.config, request.raw_path))


def set_corp_headers(request: Responder) -> None:
    """Let browsers embed the response cross-origin (`Cross-Origin-Resource-Policy`)."""
    request.add_response_headers(h.CORP_HEADERS)


def set_clickjacking_protection_headers(request: Responder) -> None:
    """Forbid framing the response (`X-Frame-Options`, CSP `frame-ancestors`)."""
    request.add_response_headers(h.CLICKJACKING_HEADERS)


def finish_request(request: Responder) -> None:
    """Synapse's spelling of `request.finish()`: what was written goes out when the handler returns."""
    request.finish()
