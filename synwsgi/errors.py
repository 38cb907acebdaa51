"""Matrix error codes and the exception hierarchy.

Each error knows how to describe itself (`error_dict`, `headers`, `code`);
`synwsgi.responses` turns that description into a response. Nothing here
imports the rest of synwsgi.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from enum import Enum
from http import HTTPStatus
from typing import Any


class Codes(str, Enum):
    """The Matrix `errcode` values synwsgi raises or that handlers commonly need."""

    UNKNOWN = "M_UNKNOWN"
    UNRECOGNIZED = "M_UNRECOGNIZED"
    NOT_FOUND = "M_NOT_FOUND"
    FORBIDDEN = "M_FORBIDDEN"
    UNAUTHORIZED = "M_UNAUTHORIZED"
    BAD_JSON = "M_BAD_JSON"
    NOT_JSON = "M_NOT_JSON"
    TOO_LARGE = "M_TOO_LARGE"
    MISSING_PARAM = "M_MISSING_PARAM"
    INVALID_PARAM = "M_INVALID_PARAM"
    LIMIT_EXCEEDED = "M_LIMIT_EXCEEDED"
    MISSING_TOKEN = "M_MISSING_TOKEN"
    UNKNOWN_TOKEN = "M_UNKNOWN_TOKEN"

    def __str__(self) -> str:
        return self.value


class CodeMessageException(RuntimeError):
    """An exception with an HTTP status code and a human-readable message."""

    def __init__(
        self,
        code: int | HTTPStatus,
        msg: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(f"{int(code)}: {msg}")
        self.code = int(code)
        self.msg = msg
        self.headers: dict[str, str] | None = dict(headers) if headers else None


class RedirectException(CodeMessageException):
    """Raised by an HTML resource to redirect the browser elsewhere.

    Append `Set-Cookie` values to `cookies`; each becomes its own header.
    """

    def __init__(self, location: bytes | str, http_code: int = HTTPStatus.FOUND) -> None:
        super().__init__(http_code, "Redirect")
        self.location = location.decode("ascii") if isinstance(location, bytes) else location
        self.cookies: list[bytes | str] = []


class SynapseError(CodeMessageException):
    """A client-facing error: a status code plus a Matrix `errcode` body."""

    def __init__(
        self,
        code: int | HTTPStatus,
        msg: str,
        errcode: str = Codes.UNKNOWN,
        additional_fields: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(code, msg, headers)
        # A plain str (a `Codes` member is a str subclass, which JSON encoders
        # treat as an unknown type); str.__str__ avoids Enum's slow lookups.
        self.errcode = str.__str__(errcode)
        self._additional_fields = dict(additional_fields or {})

    def error_dict(self, config: object | None = None) -> dict[str, Any]:
        """The JSON body of this error. `config` is accepted for Synapse parity."""
        return {**self._additional_fields, "errcode": self.errcode, "error": self.msg}


class UnrecognizedRequestError(SynapseError):
    """No servlet handles this path (404) or this method on it (405)."""

    def __init__(
        self,
        msg: str = "Unrecognized request",
        code: int = HTTPStatus.NOT_FOUND,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(code, msg, Codes.UNRECOGNIZED, headers=headers)


class NotFoundError(SynapseError):
    """The requested thing does not exist."""

    def __init__(self, msg: str = "Not found", errcode: str = Codes.NOT_FOUND) -> None:
        super().__init__(HTTPStatus.NOT_FOUND, msg, errcode)


class AuthError(SynapseError):
    """The requester may not do this."""

    def __init__(
        self,
        code: int,
        msg: str,
        errcode: str = Codes.FORBIDDEN,
        additional_fields: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(code, msg, errcode, additional_fields)


class InvalidClientTokenError(AuthError):
    """The access token was not recognised (401 `M_UNKNOWN_TOKEN`)."""

    def __init__(self, msg: str = "Invalid access token passed.", soft_logout: bool = False) -> None:
        super().__init__(
            HTTPStatus.UNAUTHORIZED,
            msg,
            Codes.UNKNOWN_TOKEN,
            additional_fields={"soft_logout": soft_logout},
        )


class MissingClientTokenError(AuthError):
    """No access token was given (401 `M_MISSING_TOKEN`)."""

    def __init__(self, msg: str = "Missing access token") -> None:
        super().__init__(HTTPStatus.UNAUTHORIZED, msg, Codes.MISSING_TOKEN)


class LimitExceededError(SynapseError):
    """Rate limited: 429 with `retry_after_ms` always in the body.

    `Retry-After` (whole seconds, rounded up) is only sent when the delay is known.
    """

    def __init__(
        self,
        code: int = HTTPStatus.TOO_MANY_REQUESTS,
        msg: str = "Too Many Requests",
        retry_after_ms: int | None = None,
        errcode: str = Codes.LIMIT_EXCEEDED,
    ) -> None:
        headers = (
            {"Retry-After": str(math.ceil(retry_after_ms / 1000))} if retry_after_ms is not None else None
        )
        super().__init__(code, msg, errcode, headers=headers)
        self.retry_after_ms = retry_after_ms

    def error_dict(self, config: object | None = None) -> dict[str, Any]:
        return {**super().error_dict(config), "retry_after_ms": self.retry_after_ms}


class RequestTooLargeError(SynapseError):
    """The request body is over `max_request_body_size` (413 `M_TOO_LARGE`)."""

    def __init__(self, max_size: int) -> None:
        super().__init__(
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            f"Request content is too large (>{max_size})",
            Codes.TOO_LARGE,
        )
