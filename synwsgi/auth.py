"""Access tokens and requesters: where a token -> user lookup plugs in.

Synapse's servlets start with `requester = await self.auth.get_user_by_req(request)`.
synwsgi keeps that call and leaves the lookup to the application: give
`Auth` a function from an access token to a `Requester` (or None for an
unknown token), or subclass it and override `get_user_by_access_token`::

    def lookup(token: str) -> Requester | None:
        row = db.execute("SELECT user_id, device_id, id FROM tokens WHERE token = %s", (token,))
        return create_requester(row.user_id, device_id=row.device_id, access_token_id=row.id) if row else None

    auth = Auth(lookup)

    class WhoamiServlet(RestServlet):
        PATTERNS = client_patterns("/account/whoami$")

        def on_GET(self, request):
            requester = auth.get_user_by_req(request)   # 401 M_MISSING_TOKEN / M_UNKNOWN_TOKEN
            return 200, {"user_id": requester.user.to_string()}

`get_user_by_req` finds the token as Synapse does (`get_access_token_from_request`),
calls the lookup, refuses guests unless `allow_guest`, and sets
`request.requester` (the access log prints `str(requester)`, the user id)
before returning. It returns the `Requester` itself, which may also be
awaited, so ported `async def` servlets keep their `await`.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, cast

from .clock import resolve
from .errors import AuthError, Codes, InvalidClientTokenError, MissingClientTokenError, SynapseError
from .servlet import query_values

if TYPE_CHECKING:
    from collections.abc import Generator

    from .request import SynapseRequest


@dataclass(frozen=True, slots=True)
class UserID:
    """A Matrix user id, `@localpart:domain`, split as Synapse's `UserID` is."""

    localpart: str
    domain: str

    SIGIL = "@"

    @classmethod
    def from_string(cls, s: str) -> UserID:
        """Parse `@localpart:domain`; 400 `M_INVALID_PARAM` otherwise."""
        if not s.startswith(cls.SIGIL):
            raise SynapseError(
                HTTPStatus.BAD_REQUEST,
                f"Expected UserID string to start with '{cls.SIGIL}'",
                Codes.INVALID_PARAM,
            )
        localpart, sep, domain = s[1:].partition(":")
        if not sep:
            raise SynapseError(
                HTTPStatus.BAD_REQUEST,
                f"Expected UserID of the form '{cls.SIGIL}localname:domain'",
                Codes.INVALID_PARAM,
            )
        return cls(localpart, domain)

    @classmethod
    def is_valid(cls, s: str) -> bool:
        try:
            cls.from_string(s)
        except SynapseError:
            return False
        return True

    def to_string(self) -> str:
        return f"{self.SIGIL}{self.localpart}:{self.domain}"

    __str__ = to_string


@dataclass(frozen=True, slots=True)
class Requester:
    """Who made a request, as Synapse's `Requester`.

    `str(requester)` is the user id: that is what the access log prints.
    Awaiting a requester gives it back, so `await auth.get_user_by_req(...)`
    in ported async code and the plain call in sync code both work.
    """

    user: UserID
    access_token_id: int | None = None
    is_guest: bool = False
    scope: frozenset[str] = field(default_factory=frozenset)
    shadow_banned: bool = False
    device_id: str | None = None
    app_service_id: str | None = None
    authenticated_entity: str = ""

    @property
    def user_id(self) -> str:
        return self.user.to_string()

    def __str__(self) -> str:
        return self.user.to_string()

    def __await__(self) -> Generator[Any, None, Requester]:
        return self
        yield  # pragma: no cover (makes this a generator)


def create_requester(
    user_id: str | UserID,
    access_token_id: int | None = None,
    is_guest: bool = False,
    scope: Collection[str] = (),
    shadow_banned: bool = False,
    device_id: str | None = None,
    app_service_id: str | None = None,
    authenticated_entity: str | None = None,
) -> Requester:
    """A `Requester`, as Synapse's helper builds it (`authenticated_entity` defaults to the user)."""
    user = user_id if isinstance(user_id, UserID) else UserID.from_string(user_id)
    return Requester(
        user,
        access_token_id,
        is_guest,
        frozenset(scope),
        shadow_banned,
        device_id,
        app_service_id,
        authenticated_entity if authenticated_entity is not None else user.to_string(),
    )


def _authorization_header(request: SynapseRequest) -> str | None:
    value = request.environ.get("HTTP_AUTHORIZATION")
    # Surrounding whitespace is not part of a header value (servers strip it too).
    return None if value is None else str(value).strip(" \t")


def has_access_token(request: SynapseRequest) -> bool:
    """Whether the request carries an access token (header or `access_token` parameter)."""
    return bool(query_values(request.args, "access_token")) or _authorization_header(request) is not None


def get_access_token_from_request(request: SynapseRequest) -> str:
    """The request's access token, by Synapse's rules.

    `Authorization: Bearer <token>` (exactly that: one space, `Bearer` as
    written) or the `access_token` query parameter. Both at once, several
    `Authorization` headers (a server joins them with commas, which no token
    contains), any other header form, and no token at all are each a 401
    `M_MISSING_TOKEN` with Synapse's message. A token that is not ASCII is
    refused the same way (Synapse would fail with a 500).
    """
    header = _authorization_header(request)
    params = query_values(request.args, "access_token")
    if header is not None:
        if params is not None:
            raise MissingClientTokenError("Mixing Authorization headers and access_token query parameters.")
        if "," in header:
            raise MissingClientTokenError("Too many Authorization headers.")
        scheme, sep, token = header.partition(" ")
        if scheme != "Bearer" or not sep or " " in token or not token.isascii():
            raise MissingClientTokenError("Invalid Authorization header.")
        return token
    if not params:
        raise MissingClientTokenError()
    try:
        return params[0].decode("ascii")
    except UnicodeDecodeError:
        raise MissingClientTokenError("Invalid access_token query parameter.") from None


#: A token -> requester lookup: None (or `InvalidClientTokenError`) for an unknown token.
TokenLookup = Callable[[str], "Requester | None"]


class Auth:
    """Authenticates requests by access token; the lookup is the application's.

    Pass the lookup (`Auth(lookup)`), or subclass and override
    `get_user_by_access_token`. An `async def` lookup works as long as it
    only awaits other coroutines.
    """

    def __init__(self, lookup: TokenLookup | None = None) -> None:
        self._lookup = lookup

    # Synapse's static helpers, reachable as `self.auth.<name>` too.
    has_access_token = staticmethod(has_access_token)
    get_access_token_from_request = staticmethod(get_access_token_from_request)

    def get_user_by_access_token(self, token: str, allow_expired: bool = False) -> Requester | None:
        """The requester owning `token`, or None when it is unknown.

        Raise `InvalidClientTokenError(msg, soft_logout=True)` for an expired
        token, as Synapse does, unless `allow_expired`.
        """
        if self._lookup is None:
            raise NotImplementedError("pass a token lookup to Auth() or override get_user_by_access_token")
        return self._lookup(token)

    def get_user_by_req(
        self,
        request: SynapseRequest,
        allow_guest: bool = False,
        allow_expired: bool = False,
        allow_locked: bool = False,
    ) -> Requester:
        """The requester behind `request`, also stored as `request.requester`.

        Raises `MissingClientTokenError` (no usable token) or
        `InvalidClientTokenError` (unknown token), both 401, and a 403
        `M_GUEST_ACCESS_FORBIDDEN` for a guest unless `allow_guest`.
        `allow_locked` is accepted for Synapse's signature: a lookup that
        knows about locked accounts raises `UserLockedError` itself.
        """
        token = self.get_access_token_from_request(request)
        requester = cast(
            "Requester | None",
            resolve(self.get_user_by_access_token(token, allow_expired), request.config.async_driver),
        )
        if requester is None:
            raise InvalidClientTokenError()
        if requester.is_guest and not allow_guest:
            raise AuthError(HTTPStatus.FORBIDDEN, "Guest access not allowed", Codes.GUEST_ACCESS_FORBIDDEN)
        cast(Any, request).requester = requester
        return requester
