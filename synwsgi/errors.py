"""Matrix error codes and the exception hierarchy, under Synapse's names.

Each error knows how to describe itself (`code`, `error_dict(config)`,
`headers`); `synwsgi._internal.errormap` turns that description into a response.
Servlet code ported from Synapse raises these unchanged: the constructors
take Synapse's arguments (`synapse/api/errors.py`). Nothing here imports the
rest of synwsgi. The errors synwsgi's own machinery raises live here too:
the modules that raise them stay free of class definitions that subclass
built-in exceptions, which the optional mypyc build cannot compile.

Deliberate difference: `UnrecognizedRequestError` defaults to 404 (Synapse:
400), the status the Matrix spec asks for an unknown endpoint.
"""

from __future__ import annotations

import errno
import json
import math
from collections.abc import Iterable, Mapping
from enum import Enum
from http import HTTPStatus
from typing import Any


class Codes(str, Enum):
    """Every Matrix `errcode` Synapse defines, with Synapse's member names and values."""

    # General request errors
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
    BAD_PAGINATION = "M_BAD_PAGINATION"
    BAD_STATE = "M_BAD_STATE"
    EXCLUSIVE = "M_EXCLUSIVE"
    UNKNOWN_POS = "M_UNKNOWN_POS"
    DUPLICATE_ANNOTATION = "M_DUPLICATE_ANNOTATION"
    NOT_YET_UPLOADED = "M_NOT_YET_UPLOADED"
    CANNOT_OVERWRITE_MEDIA = "M_CANNOT_OVERWRITE_MEDIA"
    PROFILE_TOO_LARGE = "M_PROFILE_TOO_LARGE"
    KEY_TOO_LARGE = "M_KEY_TOO_LARGE"
    INVITE_BLOCKED = "M_INVITE_BLOCKED"
    BAD_ALIAS = "M_BAD_ALIAS"
    INVALID_SIGNATURE = "M_INVALID_SIGNATURE"
    SERVER_NOT_TRUSTED = "M_SERVER_NOT_TRUSTED"

    # Access tokens and accounts
    MISSING_TOKEN = "M_MISSING_TOKEN"
    UNKNOWN_TOKEN = "M_UNKNOWN_TOKEN"
    GUEST_ACCESS_FORBIDDEN = "M_GUEST_ACCESS_FORBIDDEN"
    USER_IN_USE = "M_USER_IN_USE"
    INVALID_USERNAME = "M_INVALID_USERNAME"
    USER_DEACTIVATED = "M_USER_DEACTIVATED"
    USER_LOCKED = "M_USER_LOCKED"
    USER_ACCOUNT_SUSPENDED = "M_USER_SUSPENDED"
    EXPIRED_ACCOUNT = "ORG_MATRIX_EXPIRED_ACCOUNT"
    USER_AWAITING_APPROVAL = "ORG.MATRIX.MSC3866_USER_AWAITING_APPROVAL"
    CONSENT_NOT_GIVEN = "M_CONSENT_NOT_GIVEN"
    RESOURCE_LIMIT_EXCEEDED = "M_RESOURCE_LIMIT_EXCEEDED"
    CAPTCHA_NEEDED = "M_CAPTCHA_NEEDED"
    CAPTCHA_INVALID = "M_CAPTCHA_INVALID"
    APPSERVICE_LOGIN_UNSUPPORTED = "IO.ELEMENT.MSC4190.M_APPSERVICE_LOGIN_UNSUPPORTED"
    UNKNOWN_DEVICE = "ORG.MATRIX.MSC4326.M_UNKNOWN_DEVICE"

    # Passwords
    WEAK_PASSWORD = "M_WEAK_PASSWORD"
    PASSWORD_TOO_SHORT = "M_PASSWORD_TOO_SHORT"
    PASSWORD_NO_DIGIT = "M_PASSWORD_NO_DIGIT"
    PASSWORD_NO_UPPERCASE = "M_PASSWORD_NO_UPPERCASE"
    PASSWORD_NO_LOWERCASE = "M_PASSWORD_NO_LOWERCASE"
    PASSWORD_NO_SYMBOL = "M_PASSWORD_NO_SYMBOL"
    PASSWORD_IN_DICTIONARY = "M_PASSWORD_IN_DICTIONARY"

    # Third-party identifiers
    THREEPID_AUTH_FAILED = "M_THREEPID_AUTH_FAILED"
    THREEPID_IN_USE = "M_THREEPID_IN_USE"
    THREEPID_NOT_FOUND = "M_THREEPID_NOT_FOUND"
    THREEPID_DENIED = "M_THREEPID_DENIED"
    THREEPID_MEDIUM_NOT_SUPPORTED = "M_THREEPID_MEDIUM_NOT_SUPPORTED"

    # Rooms
    ROOM_IN_USE = "M_ROOM_IN_USE"
    UNSUPPORTED_ROOM_VERSION = "M_UNSUPPORTED_ROOM_VERSION"
    INCOMPATIBLE_ROOM_VERSION = "M_INCOMPATIBLE_ROOM_VERSION"
    WRONG_ROOM_KEYS_VERSION = "M_WRONG_ROOM_KEYS_VERSION"
    CANNOT_LEAVE_SERVER_NOTICE_ROOM = "M_CANNOT_LEAVE_SERVER_NOTICE_ROOM"
    UNABLE_AUTHORISE_JOIN = "M_UNABLE_TO_AUTHORISE_JOIN"
    UNABLE_TO_GRANT_JOIN = "M_UNABLE_TO_GRANT_JOIN"
    UNREDACTED_CONTENT_DELETED = "FI.MAU.MSC2815_UNREDACTED_CONTENT_DELETED"
    UNABLE_DUE_TO_PARTIAL_STATE = "ORG.MATRIX.MSC3895_UNABLE_DUE_TO_PARTIAL_STATE"
    ALREADY_JOINED = "ORG.MATRIX.MSC3848.ALREADY_JOINED"
    NOT_JOINED = "ORG.MATRIX.MSC3848.NOT_JOINED"
    INSUFFICIENT_POWER = "ORG.MATRIX.MSC3848.INSUFFICIENT_POWER"
    MSC4306_CONFLICTING_UNSUBSCRIPTION = "IO.ELEMENT.MSC4306.M_CONFLICTING_UNSUBSCRIPTION"
    MSC4306_NOT_IN_THREAD = "IO.ELEMENT.MSC4306.M_NOT_IN_THREAD"

    # Application service pings
    AS_PING_URL_NOT_SET = "M_URL_NOT_SET"
    AS_PING_BAD_STATUS = "M_BAD_STATUS"
    AS_PING_CONNECTION_TIMEOUT = "M_CONNECTION_TIMEOUT"
    AS_PING_CONNECTION_FAILED = "M_CONNECTION_FAILED"

    def __str__(self) -> str:
        return self.value


def _plain(errcode: object) -> str:
    # A `Codes` member is a str subclass, which the JSON encoders treat as an
    # unknown type; str.__str__ gives the plain value without Enum's lookups.
    return str.__str__(errcode) if isinstance(errcode, str) else str(errcode)


def cs_error(msg: str, code: str = Codes.UNKNOWN, **kwargs: Any) -> dict[str, Any]:
    """The client-server JSON body of an error: `error`, `errcode`, then `kwargs`.

    As in Synapse, a keyword argument named `error` or `errcode` wins.
    """
    return {"error": msg, "errcode": _plain(code), **kwargs}


class CodeMessageException(RuntimeError):
    """An exception with an HTTP status code and a human-readable message."""

    def __init__(
        self,
        code: int | HTTPStatus,
        msg: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.code = code = int(code)
        super().__init__(f"{code}: {msg}")
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
    """A client-facing error: a status code plus a Matrix `errcode` body.

    `debug_context` is for the server's log only (the error map logs it next
    to the message and never sends it). Subclasses may override it with a
    property, as Synapse's do.
    """

    def __init__(
        self,
        code: int | HTTPStatus,
        msg: str,
        errcode: str = Codes.UNKNOWN,
        additional_fields: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        debug_context: str | None = None,
    ) -> None:
        super().__init__(code, msg, headers)
        self.errcode = errcode if type(errcode) is str else _plain(errcode)
        self._additional_fields = dict(additional_fields) if additional_fields else None
        self._debug_context = debug_context

    @property
    def debug_context(self) -> str | None:
        """Context for the log that must not reach the client."""
        return self._debug_context

    def error_dict(self, config: object | None = None) -> dict[str, Any]:
        """The JSON body of this error. `config` is accepted for Synapse parity."""
        if self._additional_fields is None:
            return {"error": self.msg, "errcode": self.errcode}
        return cs_error(self.msg, self.errcode, **self._additional_fields)


class InvalidAPICallError(SynapseError):
    """The endpoint exists but the request's data is invalid or incomplete (400 `M_BAD_JSON`)."""

    def __init__(self, msg: str) -> None:
        super().__init__(HTTPStatus.BAD_REQUEST, msg, Codes.BAD_JSON)


class InvalidProxyCredentialsError(SynapseError):
    """The credentials for a proxied request are invalid (401)."""

    def __init__(self, msg: str, errcode: str = Codes.UNKNOWN) -> None:
        super().__init__(HTTPStatus.UNAUTHORIZED, msg, errcode)


class ProxiedRequestError(SynapseError):
    """An error another Matrix server returned, passed on to the client."""

    def __init__(
        self,
        code: int,
        msg: str,
        errcode: str = Codes.UNKNOWN,
        additional_fields: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(code, msg, errcode, additional_fields)


class ConsentNotGivenError(SynapseError):
    """The user has not accepted the privacy policy (403, with where to accept it)."""

    def __init__(self, msg: str, consent_uri: str) -> None:
        super().__init__(HTTPStatus.FORBIDDEN, msg, Codes.CONSENT_NOT_GIVEN)
        self._consent_uri = consent_uri

    def error_dict(self, config: object | None = None) -> dict[str, Any]:
        return cs_error(self.msg, self.errcode, consent_uri=self._consent_uri)


class UserDeactivatedError(SynapseError):
    """The account behind the request has been deactivated (403)."""

    def __init__(self, msg: str) -> None:
        super().__init__(HTTPStatus.FORBIDDEN, msg, Codes.USER_DEACTIVATED)


class UserLockedError(SynapseError):
    """The account behind the request is locked (401, soft logout)."""

    def __init__(self) -> None:
        super().__init__(
            HTTPStatus.UNAUTHORIZED,
            "User account has been locked",
            Codes.USER_LOCKED,
            additional_fields={"soft_logout": True},
        )


class FederationDeniedError(SynapseError):
    """The destination server is not on the federation allow-list (403)."""

    def __init__(self, destination: str | None) -> None:
        self.destination = destination
        super().__init__(HTTPStatus.FORBIDDEN, f"Federation denied with {destination}.", Codes.FORBIDDEN)


class InteractiveAuthIncompleteError(Exception):
    """User-interactive auth is not complete yet: a 401 whose body is `result`.

    Not a `SynapseError` (as in Synapse: `except SynapseError` does not catch
    it), but it carries `code` and `error_dict(config)`, so the error map
    renders it without Synapse's `@interactive_auth_handler` (which
    `synwsgi.rest` also provides). The body has no `errcode`: it is the UIA
    flows dict itself.
    """

    code = HTTPStatus.UNAUTHORIZED.value
    headers: dict[str, str] | None = None
    msg = "Interactive auth not yet complete"

    def __init__(self, session_id: str, result: Mapping[str, Any]) -> None:
        super().__init__(self.msg)
        self.session_id = session_id
        self.result = result

    def error_dict(self, config: object | None = None) -> dict[str, Any]:
        return dict(self.result)


_UNRECOGNIZED = _plain(Codes.UNRECOGNIZED)


class UnrecognizedRequestError(SynapseError):
    """No servlet handles this path (404) or this method on it (405).

    Synapse's default status is 400; synwsgi's is 404, as the Matrix spec
    asks for unknown endpoints (`ServerConfig(legacy_unrecognized_400=True)`
    restores Synapse's for unknown paths).
    """

    def __init__(
        self,
        msg: str = "Unrecognized request",
        code: int = HTTPStatus.NOT_FOUND,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(code, msg, _UNRECOGNIZED, None, headers)


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


class OAuthInsufficientScopeError(SynapseError):
    """The token lacks a scope the request needs (401 with `WWW-Authenticate`)."""

    def __init__(self, required_scopes: Iterable[str]) -> None:
        scopes = " ".join(required_scopes)
        super().__init__(
            HTTPStatus.UNAUTHORIZED,
            "Insufficient scope",
            Codes.FORBIDDEN,
            headers={"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{scopes}"'},
        )


class UnstableSpecAuthError(AuthError):
    """An `AuthError` whose new errcode is still unstable (MSC3848).

    The body's `errcode` is `previous_errcode`; the new one is added under
    `org.matrix.msc3848.unstable.errcode` when `config.experimental.msc3848_enabled`.
    """

    def __init__(
        self,
        code: int,
        msg: str,
        errcode: str,
        previous_errcode: str = Codes.FORBIDDEN,
        additional_fields: Mapping[str, Any] | None = None,
    ) -> None:
        self.previous_errcode = _plain(previous_errcode)
        super().__init__(code, msg, errcode, additional_fields)

    def error_dict(self, config: object | None = None) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        if getattr(getattr(config, "experimental", None), "msc3848_enabled", False):
            fields["org.matrix.msc3848.unstable.errcode"] = self.errcode
        return cs_error(self.msg, self.previous_errcode, **fields, **(self._additional_fields or {}))


class InvalidClientCredentialsError(SynapseError):
    """The request's credentials are missing or not recognised (401)."""

    def __init__(self, msg: str, errcode: str) -> None:
        super().__init__(HTTPStatus.UNAUTHORIZED, msg, errcode)


class MissingClientTokenError(InvalidClientCredentialsError):
    """No usable access token in the request (401 `M_MISSING_TOKEN`)."""

    def __init__(self, msg: str = "Missing access token") -> None:
        super().__init__(msg, Codes.MISSING_TOKEN)


class InvalidClientTokenError(InvalidClientCredentialsError):
    """The access token was not recognised (401 `M_UNKNOWN_TOKEN`, with `soft_logout`)."""

    def __init__(self, msg: str = "Unrecognised access token", soft_logout: bool = False) -> None:
        super().__init__(msg, Codes.UNKNOWN_TOKEN)
        self._soft_logout = soft_logout

    def error_dict(self, config: object | None = None) -> dict[str, Any]:
        return {**super().error_dict(config), "soft_logout": self._soft_logout}


class ResourceLimitError(SynapseError):
    """A server resource limit (such as monthly active users) is exceeded."""

    def __init__(
        self,
        code: int,
        msg: str,
        errcode: str = Codes.RESOURCE_LIMIT_EXCEEDED,
        admin_contact: str | None = None,
        limit_type: str | None = None,
    ) -> None:
        self.admin_contact = admin_contact
        self.limit_type = limit_type
        super().__init__(code, msg, errcode)

    def error_dict(self, config: object | None = None) -> dict[str, Any]:
        return cs_error(self.msg, self.errcode, admin_contact=self.admin_contact, limit_type=self.limit_type)


class EventSizeError(SynapseError):
    """An event is too big (413 `M_TOO_LARGE`)."""

    def __init__(self, msg: str, unpersistable: bool) -> None:
        super().__init__(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, msg, Codes.TOO_LARGE)
        self.unpersistable = unpersistable


class LoginError(SynapseError):
    """Logging in failed."""


class StoreError(SynapseError):
    """Storing or fetching data failed."""


class InvalidCaptchaError(SynapseError):
    """The captcha response was wrong (400 `M_CAPTCHA_INVALID`, with `error_url`)."""

    def __init__(
        self,
        code: int = HTTPStatus.BAD_REQUEST,
        msg: str = "Invalid captcha.",
        error_url: str | None = None,
        errcode: str = Codes.CAPTCHA_INVALID,
    ) -> None:
        super().__init__(code, msg, errcode)
        self.error_url = error_url

    def error_dict(self, config: object | None = None) -> dict[str, Any]:
        return cs_error(self.msg, self.errcode, error_url=self.error_url)


class LimitExceededError(SynapseError):
    """Rate limited: 429 with `retry_after_ms` always in the body (null when unknown).

    `Retry-After` (whole seconds, rounded up) is only sent when the delay is
    known. `limiter_name` is the log's `debug_context`; `pause` is how long
    the server should wait before answering, so a client cannot spin on
    retries. synwsgi's earlier keyword form, `LimitExceededError(code=...,
    msg=..., retry_after_ms=..., errcode=...)`, still works.
    """

    def __init__(
        self,
        limiter_name: str | None = None,
        code: int = HTTPStatus.TOO_MANY_REQUESTS,
        retry_after_ms: int | None = None,
        errcode: str = Codes.LIMIT_EXCEEDED,
        pause: float | None = None,
        *,
        msg: str = "Too Many Requests",
    ) -> None:
        headers = (
            {"Retry-After": str(math.ceil(retry_after_ms / 1000))} if retry_after_ms is not None else None
        )
        super().__init__(code, msg, errcode, headers=headers, debug_context=limiter_name)
        self.retry_after_ms = retry_after_ms
        self.limiter_name = limiter_name
        self.pause = pause

    def error_dict(self, config: object | None = None) -> dict[str, Any]:
        return cs_error(self.msg, self.errcode, retry_after_ms=self.retry_after_ms)


class RoomKeysVersionError(SynapseError):
    """An upload named a room-keys backup version that is not the current one (403)."""

    def __init__(self, current_version: str) -> None:
        super().__init__(HTTPStatus.FORBIDDEN, "Wrong room_keys version", Codes.WRONG_ROOM_KEYS_VERSION)
        self.current_version = current_version

    def error_dict(self, config: object | None = None) -> dict[str, Any]:
        return cs_error(self.msg, self.errcode, current_version=self.current_version)


class UnsupportedRoomVersionError(SynapseError):
    """The request names a room version this server does not support (400)."""

    def __init__(self, msg: str = "Homeserver does not support this room version") -> None:
        super().__init__(HTTPStatus.BAD_REQUEST, msg, Codes.UNSUPPORTED_ROOM_VERSION)


class ThreepidValidationError(SynapseError):
    """Validating a third-party identifier failed (400)."""

    def __init__(self, msg: str, errcode: str = Codes.FORBIDDEN) -> None:
        super().__init__(HTTPStatus.BAD_REQUEST, msg, errcode)


class IncompatibleRoomVersionError(SynapseError):
    """Joining a room whose version this server cannot take part in (400, with `room_version`)."""

    def __init__(self, room_version: str) -> None:
        super().__init__(
            HTTPStatus.BAD_REQUEST,
            "Your homeserver does not support the features required to interact with this room",
            Codes.INCOMPATIBLE_ROOM_VERSION,
        )
        self._room_version = room_version

    def error_dict(self, config: object | None = None) -> dict[str, Any]:
        return cs_error(self.msg, self.errcode, room_version=self._room_version)


class PasswordRefusedError(SynapseError):
    """A new password does not meet the server's policy (400 `M_WEAK_PASSWORD` by default)."""

    def __init__(
        self,
        msg: str = "This password doesn't comply with the server's policy",
        errcode: str = Codes.WEAK_PASSWORD,
    ) -> None:
        super().__init__(HTTPStatus.BAD_REQUEST, msg, errcode)


class UnredactedContentDeletedError(SynapseError):
    """The unredacted content of an event is gone (404, MSC2815)."""

    def __init__(self, content_keep_ms: int | None = None) -> None:
        super().__init__(
            HTTPStatus.NOT_FOUND,
            "The content for that event has already been erased from the database",
            Codes.UNREDACTED_CONTENT_DELETED,
        )
        self.content_keep_ms = content_keep_ms

    def error_dict(self, config: object | None = None) -> dict[str, Any]:
        if self.content_keep_ms is None:
            return cs_error(self.msg, self.errcode)
        return cs_error(self.msg, self.errcode, **{"fi.mau.msc2815.content_keep_ms": self.content_keep_ms})


class NotApprovedError(SynapseError):
    """The account waits for an administrator's approval (403, MSC3866)."""

    def __init__(self, msg: str, approval_notice_medium: str) -> None:
        super().__init__(
            HTTPStatus.FORBIDDEN,
            msg,
            Codes.USER_AWAITING_APPROVAL,
            additional_fields={"approval_notice_medium": approval_notice_medium},
        )


class PartialStateConflictError(SynapseError):
    """Internal: a partial-state event met a room that is no longer partial-stated (409)."""

    @staticmethod
    def message() -> str:
        return "Cannot persist partial state event in un-partial stated room"

    def __init__(self) -> None:
        super().__init__(HTTPStatus.CONFLICT, self.message(), Codes.UNKNOWN)


class RequestSendFailed(RuntimeError):
    """An outgoing request could not be sent (DNS, connection, timeout): not a bug."""

    def __init__(self, inner_exception: BaseException, can_retry: bool) -> None:
        super().__init__(f"Failed to send request: {type(inner_exception).__name__}: {inner_exception}")
        self.inner_exception = inner_exception
        self.can_retry = can_retry


class ShadowBanError(Exception):
    """The user is shadow-banned: answer with a fake success, not an error."""


class HttpResponseException(CodeMessageException):
    """An outgoing HTTP request got an error status; `response` is its body."""

    def __init__(self, code: int, msg: str, response: bytes) -> None:
        super().__init__(code, msg)
        self.response = response

    def to_synapse_error(self) -> SynapseError:
        """This failure as an error for our client: the remote Matrix error if the body is one."""
        try:
            body = json.loads(self.response.decode("utf-8"))
        except ValueError:  # not UTF-8 or not JSON
            body = {}
        if not isinstance(body, dict):
            body = {}
        errcode = body.pop("errcode", Codes.UNKNOWN)
        message = body.pop("error", self.msg)
        return ProxiedRequestError(self.code, message, errcode, body)


class RequestTooLargeError(SynapseError):
    """The request body is over `max_request_body_size` (413 `M_TOO_LARGE`)."""

    def __init__(self, max_size: int) -> None:
        super().__init__(
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            f"Request content is too large (>{max_size})",
            Codes.TOO_LARGE,
        )


class InvalidPathParameter(SynapseError):
    """A path parameter is not valid percent-encoded UTF-8."""

    def __init__(self, name: str) -> None:
        super().__init__(
            HTTPStatus.BAD_REQUEST,
            f"Path parameter {name!r} is not valid percent-encoded UTF-8",
            Codes.INVALID_PARAM,
        )


class MethodNotAllowedError(UnrecognizedRequestError):
    """The path is known, the method is not: 405 with every method it answers in `Allow`."""

    def __init__(self, allowed: list[str]) -> None:
        self.allowed = allowed
        super().__init__(code=HTTPStatus.METHOD_NOT_ALLOWED, headers={"Allow": ", ".join(allowed)})


class ResponseAborted(BrokenPipeError):
    """The body failed half-way (`synwsgi.body`); the connection must be dropped."""

    def __init__(self) -> None:
        super().__init__(errno.EPIPE, "response body failed; connection dropped")
