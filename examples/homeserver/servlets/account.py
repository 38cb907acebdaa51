"""Accounts: versions, login, registration, logout, whoami, profile, and the
small per-user endpoints clients call on their own (capabilities, push rules,
filters, account data, presence)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from synwsgi import (
    AuthError,
    Codes,
    NotFoundError,
    RestServlet,
    SynapseError,
    SynapseRequest,
    parse_json_object_from_request,
    parse_string,
)

from ..push_rules import server_default_rules
from ..rooms import now_ms, random_string
from ..store import set_password_hash
from ._common import client_patterns

if TYPE_CHECKING:
    from ..app import HomeServer

USERNAME_RE = re.compile(r"^[a-z0-9._=\-/+]+$")


# The spec versions whose rules this server follows where it implements an
# endpoint (no server implements every optional module of a version). Checked
# against the changes a client acts on: v1.4 private read receipts
# (`m.read.private`, kept to their owner), v1.7 transaction ids scoped to the
# device and the v1.7 push rules (`.m.rule.is_user_mention`, ...), v1.9's
# `.m.rule.suppress_edits`, v1.11 authenticated media (this server has no
# media repository, so nothing unauthenticated is served either).
SPEC_VERSIONS = ["r0.6.1", *(f"v1.{minor}" for minor in range(1, 12))]


class VersionsServlet(RestServlet):
    PATTERNS = [re.compile("^/_matrix/client/versions$")]

    def on_GET(self, request: SynapseRequest) -> tuple[int, Any]:
        return 200, {"versions": SPEC_VERSIONS, "unstable_features": {}}


def client_host(request: SynapseRequest) -> str:
    """The client's address, as synwsgi resolves it (`behind_proxy` honoured): the rate-limit key."""
    return request.getClientAddress().host or "-"


class _HsServlet(RestServlet):
    def __init__(self, hs: HomeServer) -> None:
        self.hs = hs
        self.store = hs.store
        self.auth = hs.auth


class LoginServlet(_HsServlet):
    PATTERNS = client_patterns("/login$", v1=True)

    def on_GET(self, request: SynapseRequest) -> tuple[int, Any]:
        return 200, {"flows": [{"type": "m.login.password"}]}

    def on_POST(self, request: SynapseRequest) -> tuple[int, Any]:
        body = parse_json_object_from_request(request)
        self.hs.login_limiter.ratelimit(None, key=client_host(request))
        if body.get("type") != "m.login.password":
            raise SynapseError(400, "Unknown login type", Codes.UNKNOWN)
        identifier = body.get("identifier") or {"type": "m.id.user", "user": body.get("user")}
        if not isinstance(identifier, dict) or identifier.get("type") != "m.id.user":
            raise SynapseError(400, "Unknown identifier type", Codes.UNKNOWN)
        user = identifier.get("user")
        password = body.get("password")
        if not isinstance(user, str) or not isinstance(password, str):
            raise SynapseError(400, "Missing user or password", Codes.MISSING_PARAM)
        user_id = self.hs.qualify(user)
        # Failed attempts per account, as Synapse: checked first, counted on failure.
        self.hs.failed_login_limiter.ratelimit(None, key=user_id.lower(), update=False)
        stored = self.store.get_password_hash(user_id)
        if stored is None or not self.hs.passwords.verify(password, stored):
            self.hs.failed_login_limiter.can_do_action(None, key=user_id.lower())
            raise AuthError(403, "Invalid username or password", Codes.FORBIDDEN)
        if self.hs.passwords.needs_rehash(stored):
            set_password_hash(self.store, user_id, self.hs.passwords.hash(password))
        return 200, _login(self.hs, request, user_id, body)


def _login(hs: HomeServer, request: SynapseRequest, user_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """A new access token (and device, unless the body names one the user has)."""
    device_id = body.get("device_id") if isinstance(body.get("device_id"), str) else None
    name = body.get("initial_device_display_name")
    return hs.login_response(
        user_id, device_id, name if isinstance(name, str) else None, client_host(request)
    )


class RegisterServlet(_HsServlet):
    PATTERNS = client_patterns("/register$")

    def on_POST(self, request: SynapseRequest) -> tuple[int, Any]:
        body = parse_json_object_from_request(request)
        self.hs.registration_limiter.ratelimit(None, key=client_host(request))
        if parse_string(request, "kind", default="user") != "user":
            raise SynapseError(403, "Guest access is disabled", Codes.GUEST_ACCESS_FORBIDDEN)
        if not self.hs.config.enable_registration:
            raise SynapseError(403, "Registration has been disabled", Codes.FORBIDDEN)
        username = body.get("username")
        if username is None:
            username = random_string(12).lower().replace("-", "x").replace("_", "x")
        if not isinstance(username, str) or not username:
            raise SynapseError(400, "Invalid username", Codes.INVALID_USERNAME)
        localpart = username[1:].split(":")[0] if username.startswith("@") else username
        if not USERNAME_RE.match(localpart):
            raise SynapseError(
                400, "User ID can only contain characters a-z, 0-9, or '=_-./+'", Codes.INVALID_USERNAME
            )
        user_id = f"@{localpart}:{self.hs.config.server_name}"
        if self.store.user_exists(user_id):
            raise SynapseError(400, "User ID already taken.", Codes.USER_IN_USE)
        auth = body.get("auth")
        # Interactive auth with one flow of one stage, m.login.dummy: the first
        # request learns the flows (401), the next completes the stage.
        if not isinstance(auth, dict) or auth.get("type") != "m.login.dummy":
            return 401, {
                "flows": [{"stages": ["m.login.dummy"]}],
                "params": {},
                "session": (auth or {}).get("session") if isinstance(auth, dict) else random_string(24),
            }
        password = body.get("password")
        if not isinstance(password, str) or not password:
            raise SynapseError(400, "Missing password", Codes.MISSING_PARAM)
        if not self.store.create_user(user_id, self.hs.passwords.hash(password), now_ms()):
            raise SynapseError(400, "User ID already taken.", Codes.USER_IN_USE)
        if body.get("inhibit_login"):
            return 200, {"user_id": user_id, "home_server": self.hs.config.server_name}
        return 200, _login(self.hs, request, user_id, body)


class RegisterAvailableServlet(_HsServlet):
    PATTERNS = client_patterns("/register/available$")

    def on_GET(self, request: SynapseRequest) -> tuple[int, Any]:
        username = parse_string(request, "username", required=True, encoding="utf-8")
        if not USERNAME_RE.match(username):
            raise SynapseError(400, "Invalid username", Codes.INVALID_USERNAME)
        if self.store.user_exists(self.hs.qualify(username)):
            raise SynapseError(400, "User ID already taken.", Codes.USER_IN_USE)
        return 200, {"available": True}


class LogoutServlet(_HsServlet):
    PATTERNS = client_patterns("/logout$", v1=True)

    def on_POST(self, request: SynapseRequest) -> tuple[int, Any]:
        self.auth.get_user_by_req(request)
        self.store.delete_access_token(self.auth.get_access_token_from_request(request))
        return 200, {}


class LogoutAllServlet(_HsServlet):
    PATTERNS = client_patterns("/logout/all$", v1=True)

    def on_POST(self, request: SynapseRequest) -> tuple[int, Any]:
        requester = self.auth.get_user_by_req(request)
        self.store.delete_all_access_tokens(requester.user_id)
        return 200, {}


class WhoamiServlet(_HsServlet):
    PATTERNS = client_patterns("/account/whoami$")

    def on_GET(self, request: SynapseRequest) -> tuple[int, Any]:
        requester = self.auth.get_user_by_req(request)
        return 200, {"user_id": requester.user_id, "device_id": requester.device_id, "is_guest": False}


class CapabilitiesServlet(_HsServlet):
    PATTERNS = client_patterns("/capabilities$")

    def on_GET(self, request: SynapseRequest) -> tuple[int, Any]:
        self.auth.get_user_by_req(request)
        return 200, {
            "capabilities": {
                "m.room_versions": {"default": "10", "available": {"10": "stable"}},
                "m.change_password": {"enabled": False},
                "m.set_displayname": {"enabled": True},
                "m.set_avatar_url": {"enabled": True},
                "m.3pid_changes": {"enabled": False},
            }
        }


class PushRulesServlet(_HsServlet):
    """The spec's server-default rules (no pushers, no user-defined rules)."""

    PATTERNS = client_patterns("/pushrules/(?P<scope>global/?)?$")

    def on_GET(self, request: SynapseRequest, scope: str | None = None) -> tuple[int, Any]:
        requester = self.auth.get_user_by_req(request)
        rules = server_default_rules(requester.user_id)
        return 200, rules if scope else {"global": rules}


class FilterServlet(_HsServlet):
    PATTERNS = client_patterns("/user/(?P<user_id>[^/]*)/filter(/(?P<filter_id>[^/]*))?$")

    def _check_user(self, request: SynapseRequest, user_id: str) -> str:
        requester = self.auth.get_user_by_req(request)
        if requester.user_id != user_id:
            raise AuthError(403, "Cannot use filters for other users", Codes.FORBIDDEN)
        return user_id

    def on_POST(self, request: SynapseRequest, user_id: str, filter_id: str | None = None) -> tuple[int, Any]:
        if filter_id is not None:
            raise SynapseError(405, "Use GET for a filter id", Codes.UNRECOGNIZED)
        self._check_user(request, user_id)
        content = parse_json_object_from_request(request)
        return 200, {"filter_id": str(self.store.add_filter(user_id, content))}

    def on_GET(self, request: SynapseRequest, user_id: str, filter_id: str | None = None) -> tuple[int, Any]:
        self._check_user(request, user_id)
        if filter_id is None or not filter_id.isdigit():
            raise NotFoundError("No such filter")
        content = self.store.get_filter(user_id, int(filter_id))
        if content is None:
            raise NotFoundError("No such filter")
        return 200, content


class AccountDataServlet(_HsServlet):
    PATTERNS = client_patterns(
        "/user/(?P<user_id>[^/]*)(/rooms/(?P<room_id>[^/]*))?/account_data/(?P<data_type>[^/]*)$"
    )

    def _requester(self, request: SynapseRequest, user_id: str) -> None:
        requester = self.auth.get_user_by_req(request)
        if requester.user_id != user_id:
            raise AuthError(403, "Cannot access account data for other users.", Codes.FORBIDDEN)

    def on_PUT(
        self, request: SynapseRequest, user_id: str, data_type: str, room_id: str | None = None
    ) -> tuple[int, Any]:
        self._requester(request, user_id)
        content = parse_json_object_from_request(request)
        position = self.store.set_account_data(user_id, room_id or "", data_type, content)
        self.hs.notifier.notify([user_id], position)
        return 200, {}

    def on_GET(
        self, request: SynapseRequest, user_id: str, data_type: str, room_id: str | None = None
    ) -> tuple[int, Any]:
        self._requester(request, user_id)
        content = self.store.get_account_data(user_id, room_id or "", data_type)
        if content is None:
            raise NotFoundError("Account data not found")
        return 200, content


class PresenceServlet(_HsServlet):
    """Presence is not tracked: accept updates, report everyone offline."""

    PATTERNS = client_patterns("/presence/(?P<user_id>[^/]*)/status$", v1=True)

    def on_GET(self, request: SynapseRequest, user_id: str) -> tuple[int, Any]:
        self.auth.get_user_by_req(request)
        return 200, {"presence": "offline"}

    def on_PUT(self, request: SynapseRequest, user_id: str) -> tuple[int, Any]:
        requester = self.auth.get_user_by_req(request)
        if requester.user_id != user_id:
            raise AuthError(403, "Can only set your own presence state", Codes.FORBIDDEN)
        body = parse_json_object_from_request(request)
        if body.get("presence") not in ("online", "offline", "unavailable"):
            raise SynapseError(400, "Invalid presence state", Codes.INVALID_PARAM)
        return 200, {}


class ProfileServlet(_HsServlet):
    PATTERNS = client_patterns("/profile/(?P<user_id>[^/]*)(/(?P<field>displayname|avatar_url))?$", v1=True)

    def on_GET(self, request: SynapseRequest, user_id: str, field: str | None = None) -> tuple[int, Any]:
        profile = self.store.get_profile(user_id)
        if profile is None:
            raise NotFoundError("Profile was not found")
        full = {"displayname": profile[0], "avatar_url": profile[1]}
        if field is None:
            return 200, {key: value for key, value in full.items() if value is not None}
        return 200, {field: full[field]}

    def on_PUT(self, request: SynapseRequest, user_id: str, field: str | None = None) -> tuple[int, Any]:
        requester = self.auth.get_user_by_req(request)
        if field is None:
            raise SynapseError(405, "Set displayname or avatar_url", Codes.UNRECOGNIZED)
        if requester.user_id != user_id:
            raise AuthError(403, "Cannot set another user's profile", Codes.FORBIDDEN)
        body: dict[str, Any] = parse_json_object_from_request(request)
        value = body.get(field)
        if value is not None and not isinstance(value, str):
            raise SynapseError(400, f"{field} must be a string", Codes.BAD_JSON)
        self.hs.rooms.set_profile(user_id, field, value)
        return 200, {}


SERVLETS = (
    LoginServlet,
    RegisterServlet,
    RegisterAvailableServlet,
    LogoutServlet,
    LogoutAllServlet,
    WhoamiServlet,
    CapabilitiesServlet,
    PushRulesServlet,
    FilterServlet,
    AccountDataServlet,
    PresenceServlet,
    ProfileServlet,
)
