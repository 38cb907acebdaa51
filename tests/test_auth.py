"""Issue 10, section 4: access tokens, `Requester` and `Auth.get_user_by_req`.

Everything runs through a real `JsonResource` and the test `Client`. Many
cases are translated from Synapse's tests/api/test_auth.py.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from _helpers import assert_json_error, assert_json_response, make_client
from werkzeug.test import Client

import synwsgi
from synwsgi import (
    InvalidClientTokenError,
    JsonResource,
    RestServlet,
    Site,
    SynapseRequest,
    UserLockedError,
    parse_string,
)
from synwsgi.auth import (
    Auth,
    Requester,
    UserID,
    create_requester,
    get_access_token_from_request,
    has_access_token,
)
from synwsgi.observability.accesslog import AccessLogger
from synwsgi.rest import client_patterns

USER = "@alice:example.org"
TOKENS = {
    "alice-token": create_requester(USER, access_token_id=7, device_id="ALICEDEV"),
    "guest-token": create_requester("@guest1:example.org", is_guest=True),
}


def lookup(token: str) -> Requester | None:
    return TOKENS.get(token)


class TokenServlet(RestServlet):
    """Reports what the token helpers see."""

    PATTERNS = client_patterns("/token$")

    def on_GET(self, request: SynapseRequest) -> tuple[int, Any]:
        has = has_access_token(request)
        return 200, {"has": has, "token": get_access_token_from_request(request)}


class WhoamiServlet(RestServlet):
    PATTERNS = client_patterns("/account/whoami$")

    def __init__(self, auth: Auth) -> None:
        self.auth = auth

    def on_GET(self, request: SynapseRequest) -> tuple[int, Any]:
        requester = self.auth.get_user_by_req(request, allow_guest=parse_string(request, "guest") == "1")
        assert getattr(request, "requester", None) is requester
        return 200, {
            "user_id": requester.user.to_string(),
            "device_id": requester.device_id,
            "access_token_id": requester.access_token_id,
            "is_guest": requester.is_guest,
        }


class AsyncWhoamiServlet(RestServlet):
    """Synapse's style: `requester = await self.auth.get_user_by_req(request)`."""

    PATTERNS = client_patterns("/async/whoami$")

    def __init__(self, auth: Auth) -> None:
        self.auth = auth

    async def on_GET(self, request: SynapseRequest) -> tuple[int, Any]:
        requester = await self.auth.get_user_by_req(request)
        return 200, {"user_id": requester.user_id}


def build(auth: Auth) -> JsonResource:
    resource = JsonResource()
    TokenServlet().register(resource)
    WhoamiServlet(auth).register(resource)
    AsyncWhoamiServlet(auth).register(resource)
    return resource


@pytest.fixture
def client() -> Client:
    return make_client({"/": build(Auth(lookup))})


TOKEN_URL = "/_matrix/client/v3/token"
WHOAMI = "/_matrix/client/v3/account/whoami"


# -- finding the token -----------------------------------------------------------------------


def test_token_from_bearer_header(client: Client) -> None:
    response = client.get(TOKEN_URL, headers={"Authorization": "Bearer abc.DEF-123"})
    assert assert_json_response(response, 200) == {"has": True, "token": "abc.DEF-123"}


def test_token_from_query_parameter(client: Client) -> None:
    response = client.get(f"{TOKEN_URL}?access_token=q%2Btoken")
    assert assert_json_response(response, 200) == {"has": True, "token": "q+token"}


def test_no_token(client: Client) -> None:
    assert_json_error(client.get(TOKEN_URL), 401, "M_MISSING_TOKEN", "Missing access token")


def test_header_and_query_together(client: Client) -> None:
    response = client.get(f"{TOKEN_URL}?access_token=a", headers={"Authorization": "Bearer b"})
    assert_json_error(
        response, 401, "M_MISSING_TOKEN", "Mixing Authorization headers and access_token query parameters."
    )


def test_blank_query_parameter_still_counts_as_mixing(client: Client) -> None:
    response = client.get(f"{TOKEN_URL}?access_token=", headers={"Authorization": "Bearer b"})
    assert_json_error(response, 401, "M_MISSING_TOKEN")


def test_two_authorization_headers(client: Client) -> None:
    response = client.get(TOKEN_URL, headers=[("Authorization", "Bearer a"), ("Authorization", "Bearer b")])
    assert_json_error(response, 401, "M_MISSING_TOKEN", "Too many Authorization headers.")


@pytest.mark.parametrize(
    "header",
    ["Basic dXNlcjpwYXNz", "bearer abc", "Bearer", "Bearer ", "Bearer a b", "Bearer  a", "", "Bearer \u00e9"],
)
def test_malformed_authorization_header(client: Client, header: str) -> None:
    response = client.get(TOKEN_URL, headers={"Authorization": header})
    assert_json_error(response, 401, "M_MISSING_TOKEN", "Invalid Authorization header.")


def test_non_ascii_query_token_is_refused_not_a_500(client: Client) -> None:
    assert_json_error(client.get(f"{TOKEN_URL}?access_token=%C3%A9"), 401, "M_MISSING_TOKEN")


def test_has_access_token_false_without_one() -> None:
    seen: list[bool] = []

    def handler(request: SynapseRequest) -> tuple[int, Any]:
        seen.append(has_access_token(request))
        return 200, {}

    resource = JsonResource()
    resource.register_paths("GET", ["/h"], handler, "H")
    client = make_client({"/": resource})
    client.get("/h")
    client.get("/h?access_token=x")
    client.get("/h", headers={"Authorization": "Bearer y"})
    assert seen == [False, True, True]


# -- get_user_by_req -------------------------------------------------------------------------


def test_valid_token_gives_the_requester(client: Client) -> None:
    for kwargs in (
        {"headers": {"Authorization": "Bearer alice-token"}},
        {"query_string": "access_token=alice-token"},
    ):
        response = client.get(WHOAMI, **kwargs)  # type: ignore[arg-type]
        assert assert_json_response(response, 200) == {
            "user_id": USER,
            "device_id": "ALICEDEV",
            "access_token_id": 7,
            "is_guest": False,
        }


def test_async_servlet_awaits_get_user_by_req(client: Client) -> None:
    response = client.get("/_matrix/client/v3/async/whoami", headers={"Authorization": "Bearer alice-token"})
    assert assert_json_response(response, 200) == {"user_id": USER}


def test_unknown_token_is_401_unknown_token(client: Client) -> None:
    response = client.get(WHOAMI, headers={"Authorization": "Bearer nope"})
    body = assert_json_error(response, 401, "M_UNKNOWN_TOKEN", "Unrecognised access token")
    assert body["soft_logout"] is False


def test_missing_token_is_401_missing_token(client: Client) -> None:
    assert_json_error(client.get(WHOAMI), 401, "M_MISSING_TOKEN")


def test_guest_refused_unless_allowed(client: Client) -> None:
    headers = {"Authorization": "Bearer guest-token"}
    assert_json_error(
        client.get(WHOAMI, headers=headers), 403, "M_GUEST_ACCESS_FORBIDDEN", "Guest access not allowed"
    )
    body = assert_json_response(client.get(f"{WHOAMI}?guest=1", headers=headers), 200)
    assert body["is_guest"] is True


def test_lookup_may_raise_expired_soft_logout() -> None:
    class ExpiringAuth(Auth):
        def get_user_by_access_token(self, token: str, allow_expired: bool = False) -> Requester | None:
            if not allow_expired:
                raise InvalidClientTokenError(msg="Access token has expired", soft_logout=True)
            return TOKENS["alice-token"]

    client = make_client({"/": build(ExpiringAuth())})
    response = client.get(WHOAMI, headers={"Authorization": "Bearer alice-token"})
    assert (
        assert_json_error(response, 401, "M_UNKNOWN_TOKEN", "Access token has expired")["soft_logout"] is True
    )


def test_lookup_may_raise_user_locked() -> None:
    def locked(token: str) -> Requester | None:
        raise UserLockedError()

    client = make_client({"/": build(Auth(locked))})
    response = client.get(WHOAMI, headers={"Authorization": "Bearer x"})
    assert assert_json_error(response, 401, "M_USER_LOCKED")["soft_logout"] is True


def test_async_lookup_without_real_waiting_works() -> None:
    class AsyncLookupAuth(Auth):
        async def get_user_by_access_token(  # type: ignore[override]
            self, token: str, allow_expired: bool = False
        ) -> Requester | None:
            return TOKENS.get(token)

    client = make_client({"/": build(AsyncLookupAuth())})
    response = client.get(WHOAMI, headers={"Authorization": "Bearer alice-token"})
    assert assert_json_response(response, 200)["user_id"] == USER
    assert_json_error(client.get(WHOAMI, headers={"Authorization": "Bearer x"}), 401, "M_UNKNOWN_TOKEN")


def test_auth_without_lookup_is_a_programming_error(request_log: pytest.LogCaptureFixture) -> None:
    client = make_client({"/": build(Auth())})
    response = client.get(WHOAMI, headers={"Authorization": "Bearer x"})
    assert response.status_code == 500
    assert "NotImplementedError" in request_log.text


def test_access_log_prints_the_user_id(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="synwsgi.access")
    client = Client(Site({"/": build(Auth(lookup))}, hooks=[AccessLogger()]))
    response = client.get(WHOAMI, headers={"Authorization": "Bearer alice-token"})
    assert response.status_code == 200
    response.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "synwsgi.access"]
    assert len(lines) == 1
    assert f"{{{USER}}}" in lines[0]
    assert "alice-token" not in caplog.text


# -- Requester and UserID --------------------------------------------------------------------


def test_requester_fields_as_synapse() -> None:
    requester = create_requester(USER, device_id="D", scope=["a"], app_service_id="as1")
    assert str(requester) == USER
    assert requester.user_id == USER
    assert requester.user == UserID("alice", "example.org")
    assert requester.authenticated_entity == USER
    assert requester.scope == frozenset({"a"})
    assert (requester.access_token_id, requester.is_guest, requester.shadow_banned) == (None, False, False)
    puppet = create_requester(USER, authenticated_entity="@admin:example.org")
    assert puppet.authenticated_entity == "@admin:example.org"


@pytest.mark.parametrize("bad", ["alice", "@alice", ""])
def test_user_id_parse_errors(bad: str) -> None:
    assert not UserID.is_valid(bad)
    with pytest.raises(synwsgi.SynapseError) as caught:
        UserID.from_string(bad)
    assert caught.value.errcode == "M_INVALID_PARAM"


def test_exported_at_top_level() -> None:
    from synwsgi import auth

    for name in (
        "Auth",
        "Requester",
        "UserID",
        "create_requester",
        "get_access_token_from_request",
        "has_access_token",
    ):
        assert getattr(synwsgi, name) is getattr(auth, name)
