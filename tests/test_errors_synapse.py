"""Issue 10, section 2: `synwsgi.errors` as Synapse's `synapse.api.errors`.

Each error is raised by a handler behind a real `JsonResource` and checked
in the response the test `Client` gets: status, body, headers.
"""

from __future__ import annotations

from typing import Any

import pytest
from _helpers import assert_header_once, assert_json_error, assert_json_response, json_client
from werkzeug.test import Client

import synwsgi
from synwsgi import SynapseRequest
from synwsgi.errors import (
    AuthError,
    Codes,
    ConsentNotGivenError,
    EventSizeError,
    FederationDeniedError,
    HttpResponseException,
    IncompatibleRoomVersionError,
    InteractiveAuthIncompleteError,
    InvalidAPICallError,
    InvalidCaptchaError,
    InvalidClientCredentialsError,
    InvalidClientTokenError,
    LimitExceededError,
    LoginError,
    MissingClientTokenError,
    NotApprovedError,
    OAuthInsufficientScopeError,
    PasswordRefusedError,
    ProxiedRequestError,
    ResourceLimitError,
    RoomKeysVersionError,
    StoreError,
    SynapseError,
    ThreepidValidationError,
    UnrecognizedRequestError,
    UnredactedContentDeletedError,
    UnstableSpecAuthError,
    UnsupportedRoomVersionError,
    UserDeactivatedError,
    UserLockedError,
    cs_error,
)


def client_raising(exc: BaseException) -> Client:
    def callback(request: SynapseRequest) -> Any:
        raise exc

    return json_client(("GET", ["/e"], callback, "Raiser"))


def body_of(exc: BaseException, status: int) -> dict[str, Any]:
    body = assert_json_response(client_raising(exc).get("/e"), status)
    assert isinstance(body, dict)
    return body


# A few of Synapse's members, beyond the ones synwsgi had before.
@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("GUEST_ACCESS_FORBIDDEN", "M_GUEST_ACCESS_FORBIDDEN"),
        ("CONSENT_NOT_GIVEN", "M_CONSENT_NOT_GIVEN"),
        ("EXPIRED_ACCOUNT", "ORG_MATRIX_EXPIRED_ACCOUNT"),
        ("USER_ACCOUNT_SUSPENDED", "M_USER_SUSPENDED"),
        ("UNABLE_AUTHORISE_JOIN", "M_UNABLE_TO_AUTHORISE_JOIN"),
        ("USER_AWAITING_APPROVAL", "ORG.MATRIX.MSC3866_USER_AWAITING_APPROVAL"),
        ("AS_PING_URL_NOT_SET", "M_URL_NOT_SET"),
        ("MSC4306_NOT_IN_THREAD", "IO.ELEMENT.MSC4306.M_NOT_IN_THREAD"),
        ("UNKNOWN_DEVICE", "ORG.MATRIX.MSC4326.M_UNKNOWN_DEVICE"),
    ],
)
def test_codes_has_synapse_members(name: str, value: str) -> None:
    assert Codes[name] == value
    assert isinstance(Codes[name], str)


def test_codes_count_and_unique_values() -> None:
    assert len(Codes) == 70
    assert len({member.value for member in Codes}) == 70


def test_cs_error() -> None:
    assert cs_error("boom") == {"error": "boom", "errcode": "M_UNKNOWN"}
    assert cs_error("x", Codes.FORBIDDEN, extra=1) == {"error": "x", "errcode": "M_FORBIDDEN", "extra": 1}
    assert type(cs_error("x", Codes.FORBIDDEN)["errcode"]) is str


def test_additional_fields_override_as_in_synapse() -> None:
    exc = SynapseError(400, "x", Codes.UNKNOWN, additional_fields={"errcode": "M_OTHER"})
    assert exc.error_dict(None)["errcode"] == "M_OTHER"


@pytest.mark.parametrize(
    ("exc", "status", "expected"),
    [
        (InvalidAPICallError("bad data"), 400, {"errcode": "M_BAD_JSON", "error": "bad data"}),
        (
            ConsentNotGivenError("consent please", "https://example.org/consent"),
            403,
            {
                "errcode": "M_CONSENT_NOT_GIVEN",
                "error": "consent please",
                "consent_uri": "https://example.org/consent",
            },
        ),
        (UserDeactivatedError("gone"), 403, {"errcode": "M_USER_DEACTIVATED", "error": "gone"}),
        (
            UserLockedError(),
            401,
            {"errcode": "M_USER_LOCKED", "error": "User account has been locked", "soft_logout": True},
        ),
        (
            ResourceLimitError(403, "MAU", admin_contact="mailto:a@b", limit_type="monthly_active_user"),
            403,
            {
                "errcode": "M_RESOURCE_LIMIT_EXCEEDED",
                "error": "MAU",
                "admin_contact": "mailto:a@b",
                "limit_type": "monthly_active_user",
            },
        ),
        (
            ResourceLimitError(403, "limit"),
            403,
            {
                "errcode": "M_RESOURCE_LIMIT_EXCEEDED",
                "error": "limit",
                "admin_contact": None,
                "limit_type": None,
            },
        ),
        (
            UnsupportedRoomVersionError(),
            400,
            {
                "errcode": "M_UNSUPPORTED_ROOM_VERSION",
                "error": "Homeserver does not support this room version",
            },
        ),
        (
            IncompatibleRoomVersionError("11"),
            400,
            {
                "errcode": "M_INCOMPATIBLE_ROOM_VERSION",
                "error": "Your homeserver does not support the features required to interact with this room",
                "room_version": "11",
            },
        ),
        (
            PasswordRefusedError(),
            400,
            {"errcode": "M_WEAK_PASSWORD", "error": "This password doesn't comply with the server's policy"},
        ),
        (
            PasswordRefusedError("short", Codes.PASSWORD_TOO_SHORT),
            400,
            {"errcode": "M_PASSWORD_TOO_SHORT", "error": "short"},
        ),
        (
            InvalidCaptchaError(),
            400,
            {"errcode": "M_CAPTCHA_INVALID", "error": "Invalid captcha.", "error_url": None},
        ),
        (
            NotApprovedError("wait", "email"),
            403,
            {
                "errcode": "ORG.MATRIX.MSC3866_USER_AWAITING_APPROVAL",
                "error": "wait",
                "approval_notice_medium": "email",
            },
        ),
        (
            RoomKeysVersionError("3"),
            403,
            {
                "errcode": "M_WRONG_ROOM_KEYS_VERSION",
                "error": "Wrong room_keys version",
                "current_version": "3",
            },
        ),
        (
            UnredactedContentDeletedError(1000),
            404,
            {
                "errcode": "FI.MAU.MSC2815_UNREDACTED_CONTENT_DELETED",
                "error": "The content for that event has already been erased from the database",
                "fi.mau.msc2815.content_keep_ms": 1000,
            },
        ),
        (EventSizeError("too big", unpersistable=True), 413, {"errcode": "M_TOO_LARGE", "error": "too big"}),
        (ThreepidValidationError("no"), 400, {"errcode": "M_FORBIDDEN", "error": "no"}),
        (
            FederationDeniedError("evil.example"),
            403,
            {"errcode": "M_FORBIDDEN", "error": "Federation denied with evil.example."},
        ),
        (StoreError(404, "No row", Codes.NOT_FOUND), 404, {"errcode": "M_NOT_FOUND", "error": "No row"}),
        (
            LoginError(403, "Invalid password", Codes.FORBIDDEN),
            403,
            {"errcode": "M_FORBIDDEN", "error": "Invalid password"},
        ),
        (
            InvalidClientCredentialsError("who?", Codes.UNKNOWN_TOKEN),
            401,
            {"errcode": "M_UNKNOWN_TOKEN", "error": "who?"},
        ),
        (
            InvalidClientTokenError(),
            401,
            {"errcode": "M_UNKNOWN_TOKEN", "error": "Unrecognised access token", "soft_logout": False},
        ),
        (MissingClientTokenError(), 401, {"errcode": "M_MISSING_TOKEN", "error": "Missing access token"}),
        (UnrecognizedRequestError(), 404, {"errcode": "M_UNRECOGNIZED", "error": "Unrecognized request"}),
        (
            UnrecognizedRequestError(code=400),
            400,
            {"errcode": "M_UNRECOGNIZED", "error": "Unrecognized request"},
        ),
    ],
)
def test_error_bodies(exc: SynapseError, status: int, expected: dict[str, Any]) -> None:
    assert body_of(exc, status) == expected


def test_token_errors_are_client_credentials_errors_as_in_synapse() -> None:
    assert isinstance(MissingClientTokenError(), InvalidClientCredentialsError)
    assert isinstance(InvalidClientTokenError(), InvalidClientCredentialsError)
    assert not isinstance(InvalidClientTokenError(), AuthError)


def test_oauth_insufficient_scope_header() -> None:
    response = client_raising(OAuthInsufficientScopeError(["urn:a", "urn:b"])).get("/e")
    assert_json_error(response, 401, "M_FORBIDDEN", "Insufficient scope")
    assert_header_once(response, "WWW-Authenticate", 'Bearer error="insufficient_scope", scope="urn:a urn:b"')


class _Experimental:
    msc3848_enabled = True


class _Config:
    experimental = _Experimental()


def test_unstable_spec_auth_error() -> None:
    exc = UnstableSpecAuthError(403, "not joined", Codes.NOT_JOINED)
    assert body_of(exc, 403) == {"errcode": "M_FORBIDDEN", "error": "not joined"}
    assert exc.error_dict(_Config()) == {
        "errcode": "M_FORBIDDEN",
        "error": "not joined",
        "org.matrix.msc3848.unstable.errcode": "ORG.MATRIX.MSC3848.NOT_JOINED",
    }


# -- LimitExceededError ----------------------------------------------------------------------


def test_limit_exceeded_synapse_signature() -> None:
    exc = LimitExceededError("rc_message", retry_after_ms=1500, pause=0.5)
    assert (exc.limiter_name, exc.pause, exc.debug_context) == ("rc_message", 0.5, "rc_message")
    response = client_raising(exc).get("/e")
    body = assert_json_error(response, 429, "M_LIMIT_EXCEEDED", "Too Many Requests")
    assert body == {"errcode": "M_LIMIT_EXCEEDED", "error": "Too Many Requests", "retry_after_ms": 1500}
    assert_header_once(response, "Retry-After", "2")
    assert "rc_message" not in response.get_data(as_text=True)


def test_limit_exceeded_positional_synapse_form() -> None:
    exc = LimitExceededError("login", 429, 999, Codes.LIMIT_EXCEEDED, 0.1)
    assert (exc.code, exc.retry_after_ms, exc.pause) == (429, 999, 0.1)


def test_limit_exceeded_old_keyword_form() -> None:
    exc = LimitExceededError(code=429, msg="Slow down", retry_after_ms=10, errcode=Codes.LIMIT_EXCEEDED)
    response = client_raising(exc).get("/e")
    assert assert_json_error(response, 429, "M_LIMIT_EXCEEDED", "Slow down")["retry_after_ms"] == 10
    assert_header_once(response, "Retry-After", "1")


def test_limit_exceeded_unknown_delay() -> None:
    response = client_raising(LimitExceededError("x")).get("/e")
    assert assert_json_response(response, 429)["retry_after_ms"] is None
    assert "Retry-After" not in response.headers


# -- debug_context, InteractiveAuthIncompleteError, HttpResponseException --------------------


def test_debug_context_is_never_sent() -> None:
    exc = SynapseError(403, "no", Codes.FORBIDDEN, debug_context="secret-user-detail")
    assert exc.debug_context == "secret-user-detail"
    response = client_raising(exc).get("/e")
    assert "secret-user-detail" not in response.get_data(as_text=True)
    assert all("secret-user-detail" not in value for _, value in response.headers)
    assert SynapseError(400, "x").debug_context is None


def test_debug_context_can_be_a_property_as_in_synapse() -> None:
    class MyError(SynapseError):
        @property
        def debug_context(self) -> str | None:
            return "computed"

    assert MyError(400, "x").debug_context == "computed"


def test_interactive_auth_incomplete_describes_a_401_uia_body() -> None:
    flows = {"session": "abc", "flows": [{"stages": ["m.login.password"]}], "params": {}}
    exc = InteractiveAuthIncompleteError("abc", flows)
    assert not isinstance(exc, SynapseError)
    assert exc.session_id == "abc"
    assert exc.code == 401
    assert type(exc.code) is int
    assert exc.error_dict(None) == flows
    assert "errcode" not in exc.error_dict(None)


def test_http_response_exception_to_synapse_error() -> None:
    matrix = HttpResponseException(403, "Forbidden", b'{"errcode": "M_FORBIDDEN", "error": "nope", "x": 1}')
    error = matrix.to_synapse_error()
    assert isinstance(error, ProxiedRequestError)
    assert body_of(error, 403) == {"errcode": "M_FORBIDDEN", "error": "nope", "x": 1}
    other = HttpResponseException(502, "Bad Gateway", b"<html>").to_synapse_error()
    assert body_of(other, 502) == {"errcode": "M_UNKNOWN", "error": "Bad Gateway"}


def test_every_error_is_exported_at_top_level() -> None:
    from synwsgi import errors

    for name in (
        "InvalidClientCredentialsError",
        "InvalidAPICallError",
        "InteractiveAuthIncompleteError",
        "ConsentNotGivenError",
        "ResourceLimitError",
        "UnsupportedRoomVersionError",
        "IncompatibleRoomVersionError",
        "PasswordRefusedError",
        "StoreError",
        "InvalidCaptchaError",
        "UserDeactivatedError",
        "NotApprovedError",
        "cs_error",
    ):
        assert getattr(synwsgi, name) is getattr(errors, name)


def test_errors_a_server_never_raises_live_only_in_synwsgi_errors() -> None:
    """Client-side and federation errors are Synapse's too, but no servlet raises them:
    they stay importable from `synwsgi.errors` and out of the top-level namespace."""
    from synwsgi import errors

    for name in (
        "HttpResponseException",
        "RequestSendFailed",
        "ProxiedRequestError",
        "FederationDeniedError",
        "InvalidProxyCredentialsError",
        "PartialStateConflictError",
    ):
        assert hasattr(errors, name) and not hasattr(synwsgi, name)


# -- rendered by the error map (any exception with `code` and `error_dict`) ------------------


def test_interactive_auth_incomplete_raised_by_a_handler_is_the_uia_401() -> None:
    flows = {"session": "abc", "flows": [{"stages": ["m.login.password"]}], "params": {}, "completed": []}
    response = client_raising(InteractiveAuthIncompleteError("abc", flows)).get("/e")
    assert assert_json_response(response, 401) == flows


def test_debug_context_is_logged_not_sent(request_log: pytest.LogCaptureFixture) -> None:
    response = client_raising(SynapseError(403, "no", Codes.FORBIDDEN, debug_context="ctx-4711")).get("/e")
    assert_json_error(response, 403, "M_FORBIDDEN", "no")
    assert "ctx-4711" not in response.get_data(as_text=True)
    assert "ctx-4711" in request_log.text


def test_limiter_name_is_logged_not_sent(request_log: pytest.LogCaptureFixture) -> None:
    response = client_raising(LimitExceededError("rc_joins.local", retry_after_ms=10)).get("/e")
    assert response.status_code == 429
    assert "rc_joins.local" not in response.get_data(as_text=True)
    assert "rc_joins.local" in request_log.text
