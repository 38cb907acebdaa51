"""The public room directory: `/publicRooms` (GET and POST) and `/directory/list/room/{roomId}`.

A room is listed when it was created with ``"visibility": "public"`` or put
on the list by a member with ``PUT /directory/list/room/{roomId}``. Pages
are ordered by joined members, then room id; `since` tokens are opaque
offsets (``o<N>``), so a room that is listed meanwhile can shift a page.
Only this server's rooms: the `server` parameter and third-party networks
(`include_all_networks`, `third_party_instance_id`) are not supported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from synwsgi import (
    Codes,
    NotFoundError,
    RestServlet,
    SynapseError,
    SynapseRequest,
    parse_integer,
    parse_json_object_from_request,
    parse_string,
)

from ._common import client_patterns

if TYPE_CHECKING:
    from ..app import HomeServer

MAX_LIMIT = 500


class _HsServlet(RestServlet):
    def __init__(self, hs: HomeServer) -> None:
        self.hs = hs
        self.store = hs.store
        self.auth = hs.auth


def _offset(since: Any) -> int:
    if since is None:
        return 0
    if not isinstance(since, str) or not since.startswith("o") or not since[1:].isdigit():
        raise SynapseError(400, "Invalid since token", Codes.INVALID_PARAM)
    return int(since[1:])


def _page(hs: HomeServer, since: Any, limit: Any, search: Any) -> dict[str, Any]:
    if limit is None:
        limit = MAX_LIMIT
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
        raise SynapseError(400, "limit must be a non-negative integer", Codes.INVALID_PARAM)
    if search is not None and not isinstance(search, str):
        raise SynapseError(400, "generic_search_term must be a string", Codes.BAD_JSON)
    offset = _offset(since)
    limit = min(limit, MAX_LIMIT)
    chunk, total = hs.store.get_public_rooms(offset, limit, search)
    page: dict[str, Any] = {"chunk": chunk, "total_room_count_estimate": total}
    if offset + len(chunk) < total:
        page["next_batch"] = f"o{offset + len(chunk)}"
    if offset > 0:
        page["prev_batch"] = f"o{max(0, offset - limit)}"
    return page


class PublicRoomsServlet(_HsServlet):
    """GET needs no access token (as in the spec); POST does."""

    PATTERNS = client_patterns("/publicRooms$", v1=True)

    def on_GET(self, request: SynapseRequest) -> tuple[int, Any]:
        limit = parse_integer(request, "limit")
        return 200, _page(self.hs, parse_string(request, "since"), limit, None)

    def on_POST(self, request: SynapseRequest) -> tuple[int, Any]:
        self.auth.get_user_by_req(request)
        body = parse_json_object_from_request(request)
        search_filter = body.get("filter") or {}
        if not isinstance(search_filter, dict):
            raise SynapseError(400, "filter must be an object", Codes.BAD_JSON)
        return 200, _page(
            self.hs, body.get("since"), body.get("limit"), search_filter.get("generic_search_term")
        )


class RoomVisibilityServlet(_HsServlet):
    PATTERNS = client_patterns("/directory/list/room/(?P<room_id>[^/]*)$", v1=True)

    def on_GET(self, request: SynapseRequest, room_id: str) -> tuple[int, Any]:
        if not self.store.room_exists(room_id):
            raise NotFoundError("Unknown room")
        return 200, {"visibility": "public" if self.store.is_room_public(room_id) else "private"}

    def on_PUT(self, request: SynapseRequest, room_id: str) -> tuple[int, Any]:
        requester = self.auth.get_user_by_req(request)
        body = parse_json_object_from_request(request)
        visibility = body.get("visibility", "public")
        if visibility not in ("public", "private"):
            raise SynapseError(400, "visibility must be public or private", Codes.INVALID_PARAM)
        self.hs.rooms.require_joined(room_id, requester.user_id)
        self.store.set_room_public(room_id, visibility == "public")
        return 200, {}


SERVLETS = (PublicRoomsServlet, RoomVisibilityServlet)
