"""Behaviour 4: JSON errors, rate limiting, cancellation and the opaque 500."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import canonicaljson
import pytest
from _helpers import (
    CANCELLED_BODY,
    INTERNAL_ERROR_BODY,
    assert_header_once,
    assert_json_error,
    assert_json_response,
    error_records,
    json_client,
    make_client,
)
from werkzeug.test import Client

from synwsgi import (
    AuthError,
    CancelledError,
    CodeMessageException,
    Codes,
    DirectServeJsonResource,
    InvalidClientTokenError,
    JsonResource,
    LimitExceededError,
    MissingClientTokenError,
    NotFoundError,
    RestServlet,
    SynapseError,
    SynapseRequest,
    UnrecognizedRequestError,
    cancellable,
    is_function_cancellable,
)

SECRET = "s3cr3t-detail-do-not-leak"


def raising(exc: BaseException) -> Any:
    def callback(request: SynapseRequest, **params: Any) -> Any:
        raise exc

    return callback


def client_raising(exc: BaseException, name: str = "Raiser") -> Client:
    return json_client(("GET", ["/e"], raising(exc), name))


def test_codes_are_matrix_strings() -> None:
    expected = {
        "UNKNOWN": "M_UNKNOWN",
        "UNRECOGNIZED": "M_UNRECOGNIZED",
        "NOT_FOUND": "M_NOT_FOUND",
        "FORBIDDEN": "M_FORBIDDEN",
        "UNAUTHORIZED": "M_UNAUTHORIZED",
        "BAD_JSON": "M_BAD_JSON",
        "NOT_JSON": "M_NOT_JSON",
        "TOO_LARGE": "M_TOO_LARGE",
        "MISSING_PARAM": "M_MISSING_PARAM",
        "INVALID_PARAM": "M_INVALID_PARAM",
        "LIMIT_EXCEEDED": "M_LIMIT_EXCEEDED",
        "MISSING_TOKEN": "M_MISSING_TOKEN",
        "UNKNOWN_TOKEN": "M_UNKNOWN_TOKEN",
    }
    for name, value in expected.items():
        code = Codes[name]
        assert isinstance(code, str)
        assert code == value


def test_synapse_error_code_body_and_headers() -> None:
    exc = SynapseError(
        403,
        "Forbidden thing",
        Codes.FORBIDDEN,
        additional_fields={"extra": [1, 2]},
        headers={"X-Why": "because"},
    )
    response = client_raising(exc).get("/e")
    body = assert_json_error(response, 403, "M_FORBIDDEN", "Forbidden thing")
    assert body == {"errcode": "M_FORBIDDEN", "error": "Forbidden thing", "extra": [1, 2]}
    assert response.data == canonicaljson.encode_canonical_json(exc.error_dict(None))
    assert_header_once(response, "X-Why", "because")


def test_synapse_error_default_errcode_is_unknown() -> None:
    response = client_raising(SynapseError(409, "conflict")).get("/e")
    assert assert_json_error(response, 409, "M_UNKNOWN", "conflict") == {
        "errcode": "M_UNKNOWN",
        "error": "conflict",
    }


def test_synapse_error_none_field_is_null() -> None:
    response = client_raising(SynapseError(400, "x", additional_fields={"thing": None})).get("/e")
    assert assert_json_response(response, 400)["thing"] is None


@pytest.mark.parametrize(
    ("exc", "status", "errcode", "extra"),
    [
        (NotFoundError(), 404, "M_NOT_FOUND", {}),
        (NotFoundError("gone"), 404, "M_NOT_FOUND", {}),
        (AuthError(403, "no"), 403, "M_FORBIDDEN", {}),
        (AuthError(401, "who", Codes.UNAUTHORIZED), 401, "M_UNAUTHORIZED", {}),
        (InvalidClientTokenError(), 401, "M_UNKNOWN_TOKEN", {"soft_logout": False}),
        (
            InvalidClientTokenError(msg="expired", soft_logout=True),
            401,
            "M_UNKNOWN_TOKEN",
            {"soft_logout": True},
        ),
        (MissingClientTokenError(), 401, "M_MISSING_TOKEN", {}),
        (UnrecognizedRequestError(), 404, "M_UNRECOGNIZED", {}),
    ],
)
def test_error_subclasses(exc: SynapseError, status: int, errcode: str, extra: dict[str, Any]) -> None:
    response = client_raising(exc).get("/e")
    body = assert_json_error(response, status, errcode, exc.msg)
    for key, value in extra.items():
        assert body[key] == value


def test_limit_exceeded_with_retry_after() -> None:
    response = client_raising(LimitExceededError(retry_after_ms=2500)).get("/e")
    body = assert_json_error(response, 429, "M_LIMIT_EXCEEDED")
    assert body["retry_after_ms"] == 2500
    assert_header_once(response, "Retry-After", "3")


@pytest.mark.parametrize(("ms", "seconds"), [(2000, "2"), (1, "1"), (1001, "2"), (0, "0"), (60000, "60")])
def test_limit_exceeded_retry_after_is_ceiling_of_seconds(ms: int, seconds: str) -> None:
    response = client_raising(LimitExceededError(retry_after_ms=ms)).get("/e")
    assert response.status_code == 429
    assert_header_once(response, "Retry-After", seconds)
    assert response.get_json()["retry_after_ms"] == ms


def test_limit_exceeded_without_retry_after() -> None:
    response = client_raising(LimitExceededError()).get("/e")
    body = assert_json_error(response, 429, "M_LIMIT_EXCEEDED")
    assert "retry_after_ms" in body
    assert body["retry_after_ms"] is None
    assert b'"retry_after_ms":null' in response.data
    assert "Retry-After" not in response.headers


def test_cancellation_is_499(request_log: pytest.LogCaptureFixture) -> None:
    response = client_raising(CancelledError(), "CancelledServlet").get("/e")
    assert response.status_code == 499
    assert response.data == CANCELLED_BODY
    assert_json_response(response, 499)
    # The client had not gone away: that is worth an error in the log.
    errors = error_records(request_log)
    assert len(errors) == 1
    assert "CancelledServlet" in errors[0].getMessage()


def test_unexpected_exception_is_opaque_500_logged_with_traceback(
    request_log: pytest.LogCaptureFixture,
) -> None:
    class ExplodingServlet(RestServlet):
        PATTERNS = ["/explode"]

        def on_GET(self, request: SynapseRequest) -> tuple[int, Any]:
            raise RuntimeError(SECRET)

    resource = JsonResource()
    ExplodingServlet().register(resource)
    response = make_client({"/": resource}).get("/explode")
    assert response.data == INTERNAL_ERROR_BODY
    assert_json_response(response, 500)
    assert SECRET.encode() not in response.data
    assert all(SECRET not in value for _, value in response.headers)

    errors = error_records(request_log)
    assert len(errors) == 1
    record = errors[0]
    assert record.levelno == logging.ERROR
    assert "ExplodingServlet" in record.getMessage()
    assert record.exc_info is not None
    assert record.exc_info[0] is RuntimeError
    assert SECRET in request_log.text  # the traceback went to the log, not to the client
    assert "Traceback" in request_log.text


@pytest.mark.parametrize(
    "exc",
    [
        ValueError(SECRET),
        KeyError(SECRET),
        TypeError(SECRET),
        ZeroDivisionError(SECRET),
        AssertionError(SECRET),
    ],
)
def test_any_exception_is_opaque_500(exc: Exception, request_log: pytest.LogCaptureFixture) -> None:
    response = client_raising(exc).get("/e")
    assert response.data == INTERNAL_ERROR_BODY
    assert_json_response(response, 500)
    assert len(error_records(request_log)) == 1


def test_code_message_exception_on_json_resource_is_opaque_500(request_log: pytest.LogCaptureFixture) -> None:
    # As in Synapse: only a SynapseError has a JSON form; anything else is a 500.
    response = client_raising(CodeMessageException(418, SECRET)).get("/e")
    assert response.data == INTERNAL_ERROR_BODY
    assert_json_response(response, 500)
    assert len(error_records(request_log)) == 1


def test_direct_serve_json_resource_500_names_the_class(request_log: pytest.LogCaptureFixture) -> None:
    class BrokenResource(DirectServeJsonResource):
        def on_POST(self, request: SynapseRequest) -> tuple[int, Any]:
            raise RuntimeError(SECRET)

    response = make_client({"/b": BrokenResource()}).post("/b")
    assert response.data == INTERNAL_ERROR_BODY
    assert_json_response(response, 500)
    errors = error_records(request_log)
    assert len(errors) == 1
    assert "BrokenResource" in errors[0].getMessage()
    assert errors[0].exc_info is not None


def test_async_exception_is_opaque_500(request_log: pytest.LogCaptureFixture) -> None:
    async def callback(request: SynapseRequest) -> tuple[int, Any]:
        raise RuntimeError(SECRET)

    response = json_client(("GET", ["/a"], callback, "AsyncBoom")).get("/a")
    assert response.data == INTERNAL_ERROR_BODY
    errors = error_records(request_log)
    assert len(errors) == 1
    assert "AsyncBoom" in errors[0].getMessage()


def test_error_before_first_byte_of_stream_is_a_json_500(request_log: pytest.LogCaptureFixture) -> None:
    def callback(request: SynapseRequest) -> Iterator[bytes]:
        raise RuntimeError(SECRET)
        yield b"never"  # pragma: no cover

    response = json_client(("GET", ["/s"], callback, "StreamBoom")).get("/s")
    assert response.data == INTERNAL_ERROR_BODY
    assert_json_response(response, 500)
    errors = error_records(request_log)
    assert len(errors) == 1
    assert "StreamBoom" in errors[0].getMessage()


def test_synapse_error_before_first_byte_of_stream() -> None:
    def callback(request: SynapseRequest) -> Iterator[bytes]:
        raise SynapseError(403, "stream forbidden", Codes.FORBIDDEN)
        yield b"never"  # pragma: no cover

    response = json_client(("GET", ["/s"], callback, "S")).get("/s")
    assert_json_error(response, 403, "M_FORBIDDEN", "stream forbidden")


def test_cancellable_handler_runs_normally_and_cancellation_is_499(
    request_log: pytest.LogCaptureFixture,
) -> None:
    class SlowServlet(RestServlet):
        PATTERNS = ["/slow/<mode>"]

        @cancellable
        def on_GET(self, request: SynapseRequest, mode: str) -> tuple[int, Any]:
            if mode == "cancel":
                raise CancelledError()
            return 200, {"mode": mode}

    assert is_function_cancellable(SlowServlet.on_GET)
    assert is_function_cancellable(SlowServlet().on_GET)
    assert not is_function_cancellable(raising(ValueError()))
    resource = JsonResource()
    SlowServlet().register(resource)
    client = make_client({"/": resource})
    assert assert_json_response(client.get("/slow/ok"), 200) == {"mode": "ok"}
    response = client.get("/slow/cancel")
    assert response.status_code == 499
    assert response.data == CANCELLED_BODY


def test_synapse_error_is_not_logged_as_error(request_log: pytest.LogCaptureFixture) -> None:
    client_raising(SynapseError(400, "meh")).get("/e")
    client_raising(LimitExceededError(retry_after_ms=5)).get("/e")
    assert error_records(request_log) == []


def test_error_bodies_stay_right_however_many_messages_repeat_or_differ() -> None:
    """Plain `{errcode, error}` bodies are encoded once each and reused: every
    message must still come back as its own, past the cache's bound, and a
    body with more fields is never confused with the plain one."""
    messages = [f"Unknown room !r{i}:example.org \u2603" for i in range(2600)]
    state = {"i": 0}

    def callback(request: SynapseRequest) -> Any:
        i = state["i"]
        if i % 2:
            raise SynapseError(400, messages[i], Codes.INVALID_PARAM, {"extra": i})
        raise SynapseError(400, messages[i], Codes.INVALID_PARAM)

    client = json_client(("GET", ["/e"], callback, "Errors"))
    for round_ in range(2):  # the second round reads what the first one cached
        for i in range(2600):  # 1300 plain bodies: more than the cache holds
            state["i"] = i
            response = client.get("/e")
            expected: dict[str, Any] = {"errcode": "M_INVALID_PARAM", "error": messages[i]}
            if i % 2:
                expected["extra"] = i
            assert response.status_code == 400, round_
            assert response.get_data() == canonicaljson.encode_canonical_json(expected)
            assert response.headers["Content-Length"] == str(len(response.get_data()))


def test_is_function_cancellable_reads_every_kind_of_callable() -> None:
    """Functions, bound methods, wrappers and callable objects, marked or not."""
    import functools

    @cancellable
    def marked(request: SynapseRequest) -> None: ...

    def unmarked(request: SynapseRequest) -> None: ...

    class Handlers:
        @cancellable
        def on_GET(self, request: SynapseRequest) -> None: ...

        def on_PUT(self, request: SynapseRequest) -> None: ...

        @classmethod
        @cancellable
        def via_class(cls, request: SynapseRequest) -> None: ...

    class CallableMarked:
        cancellable = True

        def __call__(self, request: SynapseRequest) -> None: ...

    class CallableUnmarked:
        def __call__(self, request: SynapseRequest) -> None: ...

    @functools.wraps(unmarked)
    def wrapper(request: SynapseRequest) -> None: ...

    assert is_function_cancellable(marked)
    assert not is_function_cancellable(unmarked)
    assert is_function_cancellable(Handlers().on_GET)
    assert not is_function_cancellable(Handlers().on_PUT)
    assert is_function_cancellable(Handlers.via_class)
    assert is_function_cancellable(CallableMarked())
    assert not is_function_cancellable(CallableUnmarked())
    assert is_function_cancellable(cancellable(wrapper))
    assert not is_function_cancellable(functools.partial(unmarked))
