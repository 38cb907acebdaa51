"""STAND-IN, to be deleted: minimal copies of toolkit pieces not merged yet.

`client_patterns` (synwsgi.rest), `Auth`/`Requester` (synwsgi.auth) and
`HttpTransactionCache` (synwsgi.transactions) are being written in the
toolkit by another helper; until they land, the homeserver uses these few
lines, with the same names and call shapes, so switching is an import change.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from synwsgi import InvalidClientTokenError, MissingClientTokenError, SynapseRequest, parse_string

CLIENT_API_PREFIX = "/_matrix/client"


def client_patterns(
    path_regex: str, releases: Iterable[str] = ("r0", "v3"), unstable: bool = True, v1: bool = False
) -> list[re.Pattern[str]]:
    versions = [*releases, *(["unstable"] if unstable else []), *(["api/v1"] if v1 else [])]
    return [re.compile(f"^{CLIENT_API_PREFIX}/{version}{path_regex}") for version in versions]


@dataclass(frozen=True)
class Requester:
    user_id: str
    device_id: str
    access_token: str

    def __str__(self) -> str:
        return self.user_id


def get_access_token_from_request(request: SynapseRequest) -> str:
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise MissingClientTokenError("Invalid Authorization header.")
        return token.strip()
    query_token = parse_string(request, "access_token")
    if query_token is None:
        raise MissingClientTokenError()
    return query_token


class Auth:
    def __init__(self, lookup: Callable[[str], tuple[str, str] | None]) -> None:
        self._lookup = lookup

    def get_user_by_req(self, request: SynapseRequest) -> Requester:
        token = get_access_token_from_request(request)
        found = self._lookup(token)
        if found is None:
            raise InvalidClientTokenError("Unknown access token")
        requester = Requester(found[0], found[1], token)
        request.requester = requester  # type: ignore[assignment]
        return requester


class HttpTransactionCache:
    """Replay a (requester, path) response for 30 minutes, as Synapse does."""

    def __init__(self, expiry_seconds: float = 1800) -> None:
        self._expiry = expiry_seconds
        self._lock = threading.Lock()
        self._responses: dict[tuple[str, str], tuple[float, Any]] = {}

    def fetch_or_execute_request(
        self, request: SynapseRequest, requester: Requester, function: Callable[[], Any]
    ) -> Any:
        key = (requester.access_token, request.path)
        now = time.monotonic()
        with self._lock:
            hit = self._responses.get(key)
            if hit is not None and now - hit[0] < self._expiry:
                return hit[1]
        result = function()
        with self._lock:
            self._responses[key] = (now, result)
        return result
