"""The error map: an exception becomes a status, a body, headers and a log line, here only.

One table (`describe_error`) for every resource, and two renderers: JSON for
APIs and an HTML page (from a template) for browser-facing resources. What
an error says about itself comes from the error (`code`, `error_dict`,
`headers`, as Synapse's errors describe themselves); any exception carrying
those is rendered as a Synapse error, so Synapse's own error classes work
as they are. Everything else is a bare 500 whose traceback goes to the log
and never to the client.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from werkzeug.exceptions import HTTPException

from ..cancellation import HTTP_STATUS_REQUEST_CANCELLED, CancelledError
from ..errors import CodeMessageException, Codes, RedirectException, SynapseError, UnrecognizedRequestError
from ..jsonenc import encode_canonical_json
from ..policy import merge
from ..responses import Response, html_response, json_bytes_response, redirect_response
from .headers import safe_header

if TYPE_CHECKING:
    import jinja2

    from ..request import SynapseRequest

logger = logging.getLogger("synwsgi.errors")

_INTERNAL_ERROR = {"errcode": Codes.UNKNOWN.value, "error": "Internal server error"}
_CANCELLED = {"errcode": Codes.UNKNOWN.value, "error": "Request cancelled"}

_ERRCODES_BY_STATUS: dict[int, Codes] = {
    HTTPStatus.NOT_FOUND: Codes.NOT_FOUND,
    HTTPStatus.REQUEST_ENTITY_TOO_LARGE: Codes.TOO_LARGE,
    HTTPStatus.FORBIDDEN: Codes.FORBIDDEN,
    HTTPStatus.UNAUTHORIZED: Codes.UNAUTHORIZED,
}


class ErrorDescription:
    """What the client is told: status, JSON body, HTML message, extra headers.

    A plain class rather than a dataclass: a dataclass's generated `__init__`
    stays interpreted Python in the mypyc build, and one is made per error.
    """

    __slots__ = ("body", "code", "headers", "msg", "redirect")

    def __init__(
        self,
        code: int,
        body: Mapping[str, Any],
        msg: str,
        headers: Mapping[str, str] | None = None,
        redirect: RedirectException | None = None,
    ) -> None:
        self.code = code
        self.body = body
        self.msg = msg
        self.headers = headers
        #: set for a `RedirectException` raised by an HTML resource
        self.redirect = redirect


def describe_error(request: SynapseRequest, exc: BaseException, html_page: bool = False) -> ErrorDescription:
    """The one table, logging as Synapse logs: client errors at INFO, the rest at ERROR.

    `html_page`: for an HTML resource, which honours `RedirectException` and
    shows a plain `CodeMessageException`'s own code and message (a JSON API
    answers those with a 500, as Synapse does).
    """
    if isinstance(exc, SynapseError):
        if request.config.legacy_unrecognized_400 and isinstance(exc, UnrecognizedRequestError):
            exc = UnrecognizedRequestError(exc.msg, HTTPStatus.BAD_REQUEST)
    elif isinstance(exc, HTTPException) and exc.code is not None:
        # Werkzeug's own errors (body limits, `abort`) as Matrix errors.
        exc = SynapseError(exc.code, exc.name, _ERRCODES_BY_STATUS.get(exc.code, Codes.UNKNOWN))
    # Synapse's errors describe themselves; any exception that does is one.
    if isinstance(exc, SynapseError) or (
        isinstance(getattr(exc, "code", None), int) and hasattr(exc, "error_dict")
    ):
        described: Any = exc
        code: int = described.code
        msg = exc.msg if isinstance(exc, CodeMessageException) else str(getattr(exc, "msg", "") or exc)
        if logger.isEnabledFor(logging.INFO):
            debug_context = getattr(exc, "debug_context", None)
            if debug_context:
                logger.info("%r SynapseError: %s - %s (%s)", request, code, msg, debug_context)
            else:
                logger.info("%r SynapseError: %s - %s", request, code, msg)
        headers = getattr(exc, "headers", None)
        if headers and code == HTTPStatus.BAD_REQUEST and isinstance(exc, UnrecognizedRequestError):
            headers = None  # the legacy answer lists no methods
        body = described.error_dict(request.config)
        return ErrorDescription(code, body, msg, headers or None)
    if isinstance(exc, CancelledError):
        scope = request.cancel_scope
        if scope is None or not scope.disconnected:
            logger.error(
                "Got cancellation before client disconnection from %r: %r",
                request.servlet_name,
                request,
                exc_info=(type(exc), exc, exc.__traceback__),
            )
        return ErrorDescription(HTTP_STATUS_REQUEST_CANCELLED, _CANCELLED, "Request cancelled")
    if html_page and isinstance(exc, RedirectException):
        logger.info("%r redirect to %s", request, exc.location)
        return ErrorDescription(exc.code, {}, exc.msg, exc.headers, redirect=exc)
    _log_unexpected(request, exc)
    if html_page and isinstance(exc, CodeMessageException):
        return ErrorDescription(exc.code, _INTERNAL_ERROR, exc.msg, exc.headers)
    return ErrorDescription(HTTPStatus.INTERNAL_SERVER_ERROR, _INTERNAL_ERROR, "Internal server error")


def _log_unexpected(request: SynapseRequest, exc: BaseException) -> None:
    logger.error(
        "Failed handle request via %r: %r",
        request.servlet_name,
        request,
        exc_info=(type(exc), exc, exc.__traceback__),
    )


def render_error(request: SynapseRequest, exc: BaseException, html_template: Any = None) -> Response:
    """`exc` rendered for the resource at hand: an HTML page when it has a template
    (`str` with `{code}`/`{msg}`, or a `jinja2.Template`), else JSON."""
    if html_template is None:
        error = describe_error(request, exc)
        response = json_bytes_response(error.code, _json_error_body(error.body))
    else:
        error = describe_error(request, exc, html_page=True)
        response = _html_page(error, html_template)
    if error.headers:
        response.headers = merge(response.headers, (safe_header(k, v) for k, v in error.headers.items()))
    return response


def _json_error_body(body: Mapping[str, Any]) -> bytes:
    """`body` as canonical JSON; the plain `{errcode, error}` bodies, which
    repeat (every unknown path is the same 404), are encoded once each."""
    if len(body) == 2:
        errcode, msg = body.get("errcode"), body.get("error")
        if type(errcode) is str and type(msg) is str:
            data = _ERROR_BODIES.get((errcode, msg))
            if data is None:
                if len(_ERROR_BODIES) >= _ERROR_BODIES_MAX:
                    _ERROR_BODIES.clear()  # messages that embed request data: stay bounded
                data = _ERROR_BODIES[errcode, msg] = encode_canonical_json(body)
            return data
    return encode_canonical_json(body)


_ERROR_BODIES: dict[tuple[str, str], bytes] = {}
_ERROR_BODIES_MAX = 1024


def _html_page(error: ErrorDescription, template: str | jinja2.Template) -> Response:
    if error.redirect is not None:
        response = redirect_response(error.redirect.location, error.code)
        for cookie in error.redirect.cookies:
            value = cookie.decode("latin-1") if isinstance(cookie, bytes) else cookie
            response.headers.append(safe_header("Set-Cookie", value))
        return response
    if isinstance(template, str):
        page = template.format(code=error.code, msg=html.escape(error.msg))
    else:
        page = template.render(code=error.code, msg=error.msg)
    return html_response(error.code, page)
