"""The response factory: JSON, HTML, redirect and error responses.

`Response` is the smallest thing a WSGI server can send (a status, a header
list and a body), built from header sets computed once in `headers`. The
`respond_with_*` functions keep Synapse's spelling: they store the response on
the request, and the resource sends it when the handler returns.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Iterable, Iterator
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from werkzeug.exceptions import HTTPException

from . import headers as h
from .cancellation import HTTP_STATUS_REQUEST_CANCELLED, CancelledError
from .config import DEFAULT_CONFIG, ServerConfig
from .errors import CodeMessageException, Codes, RedirectException, SynapseError
from .jsonenc import encode_canonical_json, encode_json

if TYPE_CHECKING:
    import jinja2
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

    from .request import SynapseRequest

logger = logging.getLogger(__name__)

Body = bytes | Iterable[bytes]

_STATUS_LINES = {int(s): f"{int(s)} {s.phrase}" for s in HTTPStatus}
_STATUS_LINES[HTTP_STATUS_REQUEST_CANCELLED] = "499 Client Closed Request"


def status_line(code: int) -> str:
    """`200 OK` for 200; unknown codes get a neutral phrase."""
    line = _STATUS_LINES.get(code)
    return line if line is not None else f"{code} Unknown"


class Response:
    """A status code, a header list and a body (bytes, or an iterable of bytes).

    A WSGI application in its own right, so it can be returned anywhere a
    Werkzeug `Response` can.
    """

    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: list[h.Header], body: Body = b"") -> None:
        self.status = int(status)
        self.headers = headers
        self.body = body

    def get_header(self, name: str) -> str | None:
        lname = name.lower()
        for key, value in self.headers:
            if key.lower() == lname:
                return value
        return None

    def set_header(self, name: str, value: str) -> None:
        """Set `name`, replacing every header of that name (case-insensitively)."""
        lname = name.lower()
        self.headers = [(k, v) for k, v in self.headers if k.lower() != lname]
        self.headers.append((name, value))

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        start_response(status_line(self.status), self.headers)
        if environ.get("REQUEST_METHOD") == "HEAD":
            close_body(self.body)
            return []
        return [self.body] if isinstance(self.body, bytes) else self.body


def close_body(body: object) -> None:
    """Call `close()` on a body that has one (PEP 3333 asks that it always runs)."""
    close = getattr(body, "close", None)
    if close is not None:
        close()


def merge_headers(headers: list[h.Header], extra: Iterable[h.Header]) -> list[h.Header]:
    """`headers` with each of `extra` replacing every header of its name.

    The last value given for a name wins; `Set-Cookie` values all stay.
    """
    merged = list(headers)
    for name, value in extra:
        lname = name.lower()
        if lname != "set-cookie":
            merged = [(k, v) for k, v in merged if k.lower() != lname]
        merged.append((name, value))
    return merged


# -- JSON -----------------------------------------------------------------------

_JSON_HEADERS = [h.JSON_CONTENT_TYPE, h.NO_CACHE]
_JSON_CORS_HEADERS = [*_JSON_HEADERS, *h.CORS_HEADERS]
_JSON_CORS_MSC3886_HEADERS = [*_JSON_HEADERS, *h.CORS_HEADERS_MSC3886]


def _json_header_set(send_cors: bool, config: ServerConfig) -> list[h.Header]:
    """The shared (never to be mutated) headers every JSON response carries."""
    if not (send_cors and config.send_cors):
        return _JSON_HEADERS
    if config.experimental_cors_msc3886:
        return _JSON_CORS_MSC3886_HEADERS
    return _JSON_CORS_HEADERS


def json_headers(send_cors: bool, config: ServerConfig = DEFAULT_CONFIG) -> list[h.Header]:
    """A fresh list of the headers every JSON response carries (no Content-Length)."""
    return list(_json_header_set(send_cors, config))


def json_bytes_response(
    code: int, json_bytes: bytes, *, send_cors: bool = True, config: ServerConfig = DEFAULT_CONFIG
) -> Response:
    """A JSON response from bytes already encoded."""
    headers = [*_json_header_set(send_cors, config), ("Content-Length", str(len(json_bytes)))]
    return Response(code, headers, json_bytes)


def json_response(
    code: int,
    obj: Any,
    *,
    canonical_json: bool = True,
    send_cors: bool = True,
    config: ServerConfig = DEFAULT_CONFIG,
) -> Response:
    """A JSON response; canonical JSON unless asked otherwise."""
    encoded = encode_canonical_json(obj) if canonical_json else encode_json(obj)
    return json_bytes_response(code, encoded, send_cors=send_cors, config=config)


def json_stream_response(
    code: int,
    chunks: Iterable[bytes],
    *,
    send_cors: bool = True,
    config: ServerConfig = DEFAULT_CONFIG,
) -> Response:
    """A JSON response whose body is produced piece by piece (sent chunked)."""
    return Response(code, json_headers(send_cors, config), chunks)


def options_response(config: ServerConfig = DEFAULT_CONFIG) -> Response:
    """The answer to a CORS preflight: 204, no body, the CORS headers."""
    headers = [("Content-Length", "0")]
    headers.extend(h.cors_headers(config))
    return Response(HTTPStatus.NO_CONTENT, headers)


# -- HTML and redirects -----------------------------------------------------------

_HTML_HEADERS = [h.HTML_CONTENT_TYPE, *h.CLICKJACKING_HEADERS]


def html_response(code: int, html_body: str | bytes) -> Response:
    """An HTML page that browsers may not frame."""
    body = html_body.encode("utf-8") if isinstance(html_body, str) else html_body
    return Response(code, [*_HTML_HEADERS, ("Content-Length", str(len(body)))], body)


def redirect_response(
    url: str | bytes,
    status_code: int = HTTPStatus.FOUND,
    cors: bool = False,
    config: ServerConfig = DEFAULT_CONFIG,
) -> Response:
    """A redirect, with a one-link HTML page for clients that do not follow it."""
    location = h.safe_location(url)
    body = _REDIRECT_PAGE.format(url=html.escape(location)).encode("ascii")
    headers = [("Location", location), *_HTML_HEADERS, ("Content-Length", str(len(body)))]
    if cors:
        headers.extend(h.cors_headers(config))
    return Response(status_code, headers, body)


_REDIRECT_PAGE = '<!DOCTYPE html>\n<html lang=en><body><a href="{url}">{url}</a></body></html>\n'


# -- errors --------------------------------------------------------------------------

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

_INTERNAL_ERROR = {"errcode": Codes.UNKNOWN.value, "error": "Internal server error"}
_CANCELLED = {"errcode": Codes.UNKNOWN.value, "error": "Request cancelled"}


def _log_unexpected(request: SynapseRequest, exc: BaseException) -> None:
    logger.error(
        "Failed handle request via %r: %r",
        request.servlet_name,
        request,
        exc_info=(type(exc), exc, exc.__traceback__),
    )


_ERRCODES_BY_STATUS: dict[int, Codes] = {
    HTTPStatus.NOT_FOUND: Codes.NOT_FOUND,
    HTTPStatus.REQUEST_ENTITY_TOO_LARGE: Codes.TOO_LARGE,
    HTTPStatus.FORBIDDEN: Codes.FORBIDDEN,
    HTTPStatus.UNAUTHORIZED: Codes.UNAUTHORIZED,
}


def _from_werkzeug(exc: HTTPException) -> SynapseError:
    """A Werkzeug HTTP error (from its body limits or `abort`) as a SynapseError."""
    code = exc.code or HTTPStatus.INTERNAL_SERVER_ERROR
    errcode = _ERRCODES_BY_STATUS.get(code, Codes.UNKNOWN)
    return SynapseError(code, exc.name, errcode)


def return_json_error(request: SynapseRequest, exc: BaseException, config: object = None) -> Response:
    """The JSON error response for `exc`, logged as Synapse logs it.

    `SynapseError`: its code, body and headers (INFO). Cancellation: 499, an
    ERROR only when the client had not gone. Anything else: a bare 500 that
    reveals nothing, and the traceback at ERROR.
    """
    if isinstance(exc, HTTPException) and exc.code is not None:
        exc = _from_werkzeug(exc)
    if isinstance(exc, SynapseError):
        logger.info("%r SynapseError: %s - %s", request, exc.code, exc.msg)
        response = json_response(exc.code, exc.error_dict(config), config=request.config)
        if exc.headers:
            response.headers = merge_headers(response.headers, exc.headers.items())
        return response
    if isinstance(exc, CancelledError):
        scope = request.cancel_scope
        if scope is None or not scope.disconnected:
            logger.error(
                "Got cancellation before client disconnection from %r: %r",
                request.servlet_name,
                request,
                exc_info=(type(exc), exc, exc.__traceback__),
            )
        return json_response(HTTP_STATUS_REQUEST_CANCELLED, _CANCELLED, config=request.config)
    _log_unexpected(request, exc)
    return json_response(HTTPStatus.INTERNAL_SERVER_ERROR, _INTERNAL_ERROR, config=request.config)


def return_html_error(
    request: SynapseRequest, exc: BaseException, error_template: str | jinja2.Template
) -> Response:
    """The HTML error page for `exc`; redirects become real redirects."""
    if isinstance(exc, CodeMessageException):
        code, msg = exc.code, exc.msg
        if isinstance(exc, RedirectException):
            logger.info("%r redirect to %s", request, exc.location)
            response = redirect_response(exc.location, code)
            for cookie in exc.cookies:
                value = cookie.decode("latin-1") if isinstance(cookie, bytes) else cookie
                response.headers.append(h.safe_header("Set-Cookie", value))
            return response
        if isinstance(exc, SynapseError):
            logger.info("%r SynapseError: %s - %s", request, code, msg)
        else:
            _log_unexpected(request, exc)
    else:
        code, msg = HTTPStatus.INTERNAL_SERVER_ERROR, "Internal server error"
        _log_unexpected(request, exc)
    if isinstance(error_template, str):
        body = error_template.format(code=code, msg=html.escape(msg))
    else:
        body = error_template.render(code=code, msg=msg)
    response = html_response(code, body)
    if exc_headers := getattr(exc, "headers", None):
        response.headers = merge_headers(response.headers, exc_headers.items())
    return response


# -- Synapse's request-oriented spellings --------------------------------------------


def respond_with_json(
    request: SynapseRequest,
    code: int,
    json_object: Any,
    send_cors: bool = False,
    canonical_json: bool = True,
) -> None:
    """Answer `request` with `json_object` once the handler returns."""
    request.response_code = code
    request.response = json_response(
        code, json_object, canonical_json=canonical_json, send_cors=send_cors, config=request.config
    )


def respond_with_json_bytes(
    request: SynapseRequest, code: int, json_bytes: bytes, send_cors: bool = False
) -> None:
    request.response_code = code
    request.response = json_bytes_response(code, json_bytes, send_cors=send_cors, config=request.config)


def respond_with_html(request: SynapseRequest, code: int, html_text: str) -> None:
    respond_with_html_bytes(request, code, html_text.encode("utf-8"))


def respond_with_html_bytes(request: SynapseRequest, code: int, html_bytes: bytes) -> None:
    request.response_code = code
    request.response = html_response(code, html_bytes)


def respond_with_redirect(
    request: SynapseRequest, url: str | bytes, status_code: int = HTTPStatus.FOUND, cors: bool = False
) -> None:
    logger.debug("Redirect to %s", url.decode("utf-8", "replace") if isinstance(url, bytes) else url)
    request.response_code = status_code
    request.response = redirect_response(url, status_code, cors, request.config)


def set_cors_headers(request: SynapseRequest) -> None:
    request.add_response_headers(h.cors_headers(request.config))


def set_corp_headers(request: SynapseRequest) -> None:
    request.add_response_headers(h.CORP_HEADERS)


def set_clickjacking_protection_headers(request: SynapseRequest) -> None:
    request.add_response_headers(h.CLICKJACKING_HEADERS)


def finish_request(request: SynapseRequest) -> None:
    """Kept for porting: the response goes out when the handler returns."""


def iter_bytes_chunks(body: bytes, size: int) -> Iterator[bytes]:
    """Split `body` into pieces of at most `size` bytes."""
    for start in range(0, len(body), size):
        yield body[start : start + size]
