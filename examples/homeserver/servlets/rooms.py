"""Rooms: create, join/leave/invite, send, state, history, typing, receipts, aliases."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from synwsgi import (
    AuthError,
    Codes,
    NotFoundError,
    RestServlet,
    SynapseError,
    SynapseRequest,
    parse_integer,
    parse_json_object_from_request,
    parse_string,
)

from ..rooms import now_ms
from ..sync import make_token, parse_token
from ._common import client_patterns

if TYPE_CHECKING:
    from ..app import HomeServer

ROOM = "(?P<room_id>[^/]*)"


class _RoomServlet(RestServlet):
    def __init__(self, hs: HomeServer) -> None:
        self.hs = hs
        self.store = hs.store
        self.auth = hs.auth
        self.rooms = hs.rooms


class CreateRoomServlet(_RoomServlet):
    PATTERNS = client_patterns("/createRoom$", v1=True)

    def on_POST(self, request: SynapseRequest) -> tuple[int, Any]:
        requester = self.auth.get_user_by_req(request)
        body = parse_json_object_from_request(request)
        room_id, alias = self.rooms.create_room(requester.user_id, body)
        if body.get("visibility") == "public":  # listed in /publicRooms
            self.store.set_room_public(room_id, True)
        response = {"room_id": room_id}
        if alias is not None:
            response["room_alias"] = alias
        return 200, response


class JoinRoomAliasServlet(_RoomServlet):
    """`POST /join/{roomIdOrAlias}`."""

    PATTERNS = client_patterns("/join/(?P<room_identifier>[^/]*)$", v1=True)

    def on_POST(self, request: SynapseRequest, room_identifier: str) -> tuple[int, Any]:
        requester = self.auth.get_user_by_req(request)
        parse_json_object_from_request(request, allow_empty_body=True)
        room_id = self.rooms.resolve_room(room_identifier)
        self.rooms.update_membership(requester.user_id, room_id, requester.user_id, "join")
        return 200, {"room_id": room_id}


class RoomMembershipServlet(_RoomServlet):
    """`POST /rooms/{roomId}/(join|leave|invite|kick|ban|unban)`.

    Each is a membership event, decided by the authorization rules: kick and
    unban write `leave` for the target, ban `ban`, invite `invite`; `reason`
    is kept in the event's content.
    """

    PATTERNS = client_patterns(f"/rooms/{ROOM}/(?P<action>join|leave|invite|kick|ban|unban)$", v1=True)
    MEMBERSHIP = {
        "join": "join",
        "leave": "leave",
        "invite": "invite",
        "kick": "leave",
        "ban": "ban",
        "unban": "leave",
    }

    def on_POST(self, request: SynapseRequest, room_id: str, action: str) -> tuple[int, Any]:
        requester = self.auth.get_user_by_req(request)
        body = parse_json_object_from_request(request, allow_empty_body=True)
        target = requester.user_id
        if action not in ("join", "leave"):
            target = body.get("user_id")  # type: ignore[assignment]
            if not isinstance(target, str) or not target.startswith("@"):
                raise SynapseError(400, "Missing user_id", Codes.MISSING_PARAM)
        reason = body.get("reason")
        if reason is not None and not isinstance(reason, str):
            raise SynapseError(400, "reason must be a string", Codes.BAD_JSON)
        room_id = self.rooms.resolve_room(room_id)
        self.rooms.update_membership(
            requester.user_id, room_id, target, self.MEMBERSHIP[action], reason=reason, action=action
        )
        return 200, {"room_id": room_id} if action == "join" else {}


class RoomRedactServlet(_RoomServlet):
    """`PUT /rooms/{roomId}/redact/{eventId}/{txnId}`: idempotent per device and txn id, as a send."""

    PATTERNS = client_patterns(f"/rooms/{ROOM}/redact/(?P<event_id>[^/]*)/(?P<txn_id>[^/]*)$", v1=True)

    def on_PUT(self, request: SynapseRequest, room_id: str, event_id: str, txn_id: str) -> tuple[int, Any]:
        requester = self.auth.get_user_by_req(request)
        response: tuple[int, Any] = self.hs.txns.fetch_or_execute_request(
            request, requester, lambda: self._redact(request, requester, room_id, event_id, txn_id)
        )
        return response

    def _redact(
        self, request: SynapseRequest, requester: Any, room_id: str, event_id: str, txn_id: str
    ) -> tuple[int, Any]:
        content = parse_json_object_from_request(request, allow_empty_body=True)
        if content.get("redacts", event_id) != event_id:
            raise SynapseError(
                400, "content.redacts differs from the event id of the path", Codes.INVALID_PARAM
            )
        self.hs.message_limiter.ratelimit(requester)
        # Another endpoint, so its own transaction ids (the spec scopes them per
        # device and endpoint): a /send and a /redact with the same id are two
        # requests. (The sender's sync then shows no transaction_id for it.)
        txn_key = "redact|" + self.hs.txn_prefix(requester) + txn_id
        event = self.rooms.redact(requester.user_id, room_id, event_id, content, txn_key=txn_key)
        return 200, {"event_id": event.event_id}


class RoomSendEventServlet(_RoomServlet):
    """`PUT /rooms/{roomId}/send/{eventType}/{txnId}`: idempotent per device and txn id.

    The toolkit's transaction cache answers a retry from memory; the txn key
    stored with the event answers it after a restart or from another process.
    """

    PATTERNS = client_patterns(f"/rooms/{ROOM}/send/(?P<event_type>[^/]*)/(?P<txn_id>[^/]*)$", v1=True)

    def on_PUT(self, request: SynapseRequest, room_id: str, event_type: str, txn_id: str) -> tuple[int, Any]:
        requester = self.auth.get_user_by_req(request)
        response: tuple[int, Any] = self.hs.txns.fetch_or_execute_request(
            request, requester, lambda: self._send(request, requester, room_id, event_type, txn_id)
        )
        return response

    def _send(
        self, request: SynapseRequest, requester: Any, room_id: str, event_type: str, txn_id: str
    ) -> tuple[int, Any]:
        content = parse_json_object_from_request(request)
        self.hs.message_limiter.ratelimit(requester)
        txn_key = self.hs.txn_prefix(requester) + txn_id
        event = self.rooms.send_event(requester.user_id, room_id, event_type, content, txn_key=txn_key)
        return 200, {"event_id": event.event_id}


class RoomStateEventServlet(_RoomServlet):
    """`GET`/`PUT /rooms/{roomId}/state/{eventType}[/{stateKey}]` (keys may hold `/`, `%`, anything)."""

    PATTERNS = client_patterns(f"/rooms/{ROOM}/state/(?P<event_type>[^/]*)(/(?P<state_key>[^/]*))?$", v1=True)

    def on_GET(
        self, request: SynapseRequest, room_id: str, event_type: str, state_key: str | None = None
    ) -> tuple[int, Any]:
        requester = self.auth.get_user_by_req(request)
        self.rooms.require_joined(room_id, requester.user_id)
        event = self.store.get_state_event(room_id, event_type, state_key or "")
        if event is None:
            raise NotFoundError("Event not found.")
        if parse_string(request, "format") == "event":
            return 200, event.to_client()
        return 200, event.content

    def on_PUT(
        self, request: SynapseRequest, room_id: str, event_type: str, state_key: str | None = None
    ) -> tuple[int, Any]:
        requester = self.auth.get_user_by_req(request)
        content = parse_json_object_from_request(request)
        if event_type == "m.room.member":
            membership = content.get("membership")
            if not isinstance(membership, str) or state_key is None:
                raise SynapseError(400, "A membership event needs a user id and a membership", Codes.BAD_JSON)
            reason = content.get("reason") if isinstance(content.get("reason"), str) else None
            event = self.rooms.update_membership(requester.user_id, room_id, state_key, membership, reason)
        else:
            event = self.rooms.send_event(requester.user_id, room_id, event_type, content, state_key or "")
        return 200, {"event_id": event.event_id}


class RoomStateServlet(_RoomServlet):
    PATTERNS = client_patterns(f"/rooms/{ROOM}/state$", v1=True)

    def on_GET(self, request: SynapseRequest, room_id: str) -> tuple[int, Any]:
        requester = self.auth.get_user_by_req(request)
        return 200, [event.to_client() for event in self.rooms.room_state_for(room_id, requester.user_id)]


class RoomMessagesServlet(_RoomServlet):
    """`GET /rooms/{roomId}/messages?from&to&dir&limit`: history, a page at a time.

    Tokens are stream positions: a page backwards from `s<N>` holds the
    events at or before N, newest first, and its `end` is the position
    before the oldest of them; forwards, the events after N. `end` is left
    out once there is nothing further.
    """

    PATTERNS = client_patterns(f"/rooms/{ROOM}/messages$", v1=True)

    def on_GET(self, request: SynapseRequest, room_id: str) -> tuple[int, Any]:
        requester = self.auth.get_user_by_req(request)
        self.rooms.require_joined(room_id, requester.user_id)
        direction = parse_string(request, "dir", default="b", allowed_values=["b", "f"])
        limit = parse_integer(request, "limit", default=10)
        if limit < 0:
            raise SynapseError(400, "limit must be non-negative", Codes.INVALID_PARAM)
        limit = min(limit, 1000)
        current = self.store.current_position()
        from_pos = parse_token(parse_string(request, "from"))
        to_pos = parse_token(parse_string(request, "to"))
        with self.store.db.transaction(write=False) as txn:
            if direction == "b":
                start = current if from_pos is None else from_pos
                floor = to_pos if to_pos is not None else 0
                events = self.store.get_room_events(txn, room_id, floor, start, limit, newest_first=True)
                end = events[-1].stream_ordering - 1 if len(events) == limit and events else None
            else:
                start = 0 if from_pos is None else from_pos
                ceiling = to_pos if to_pos is not None else current
                events = self.store.get_room_events(txn, room_id, start, ceiling, limit, newest_first=False)
                end = events[-1].stream_ordering if len(events) == limit and events else None
        prefix = self.hs.txn_prefix(requester)
        response: dict[str, Any] = {
            "chunk": [event.to_client(prefix) for event in events],
            "start": make_token(start),
            "state": [],
        }
        if end is not None:
            response["end"] = make_token(end)
        return 200, response


class RoomEventServlet(_RoomServlet):
    PATTERNS = client_patterns(f"/rooms/{ROOM}/event/(?P<event_id>[^/]*)$", v1=True)

    def on_GET(self, request: SynapseRequest, room_id: str, event_id: str) -> tuple[int, Any]:
        requester = self.auth.get_user_by_req(request)
        self.rooms.require_joined(room_id, requester.user_id)
        event = self.store.get_event(event_id)
        if event is None or event.room_id != room_id:
            raise NotFoundError("Event not found.")
        return 200, event.to_client(self.hs.txn_prefix(requester))


class JoinedMembersServlet(_RoomServlet):
    PATTERNS = client_patterns(f"/rooms/{ROOM}/joined_members$", v1=True)

    def on_GET(self, request: SynapseRequest, room_id: str) -> tuple[int, Any]:
        requester = self.auth.get_user_by_req(request)
        return 200, {"joined": self.rooms.joined_members(room_id, requester.user_id)}


class MembersServlet(_RoomServlet):
    PATTERNS = client_patterns(f"/rooms/{ROOM}/members$", v1=True)

    def on_GET(self, request: SynapseRequest, room_id: str) -> tuple[int, Any]:
        requester = self.auth.get_user_by_req(request)
        self.rooms.require_joined(room_id, requester.user_id)
        membership = parse_string(request, "membership")
        members = self.store.get_room_members(room_id, membership)
        return 200, {"chunk": [event.to_client() for event in members]}


class JoinedRoomsServlet(_RoomServlet):
    PATTERNS = client_patterns("/joined_rooms$", v1=False)

    def on_GET(self, request: SynapseRequest) -> tuple[int, Any]:
        requester = self.auth.get_user_by_req(request)
        return 200, {"joined_rooms": self.store.get_rooms_for_user(requester.user_id)}


class RoomTypingServlet(_RoomServlet):
    PATTERNS = client_patterns(f"/rooms/{ROOM}/typing/(?P<user_id>[^/]*)$", v1=True)

    def on_PUT(self, request: SynapseRequest, room_id: str, user_id: str) -> tuple[int, Any]:
        requester = self.auth.get_user_by_req(request)
        if requester.user_id != user_id:
            raise AuthError(403, "Cannot set another user's typing state", Codes.FORBIDDEN)
        body = parse_json_object_from_request(request)
        typing = body.get("typing")
        if not isinstance(typing, bool):
            raise SynapseError(400, "Missing typing", Codes.BAD_JSON)
        timeout = body.get("timeout", 30_000)
        if typing and (not isinstance(timeout, int) or isinstance(timeout, bool) or timeout < 0):
            raise SynapseError(400, "timeout must be a number of milliseconds", Codes.BAD_JSON)
        self.rooms.require_joined(room_id, user_id)
        expires = now_ms() + min(timeout, 120_000) if typing else 0
        position = self.store.set_typing(room_id, user_id, expires)
        self.hs.notifier.notify([room_id], position)
        return 200, {}


RECEIPT_TYPES = ("m.read", "m.read.private")


class ReceiptServlet(_RoomServlet):
    PATTERNS = client_patterns(f"/rooms/{ROOM}/receipt/(?P<receipt_type>[^/]*)/(?P<event_id>[^/]*)$")

    def on_POST(
        self, request: SynapseRequest, room_id: str, receipt_type: str, event_id: str
    ) -> tuple[int, Any]:
        requester = self.auth.get_user_by_req(request)
        parse_json_object_from_request(request, allow_empty_body=True)
        if receipt_type not in (*RECEIPT_TYPES, "m.fully_read"):
            raise SynapseError(400, f"Receipt type must be {', '.join(RECEIPT_TYPES)}", Codes.INVALID_PARAM)
        self._mark(requester.user_id, room_id, receipt_type, event_id)
        return 200, {}

    def _mark(self, user_id: str, room_id: str, receipt_type: str, event_id: str) -> None:
        self.rooms.require_joined(room_id, user_id)
        event = self.store.get_event(event_id)
        if event is None or event.room_id != room_id:
            raise NotFoundError("Event not found")
        if receipt_type == "m.fully_read":
            position = self.store.set_account_data(user_id, room_id, "m.fully_read", {"event_id": event_id})
            self.hs.notifier.notify([user_id], position)
            return
        position = self.store.set_receipt(room_id, user_id, receipt_type, event_id, now_ms())
        # A private receipt reaches only its owner: only the owner's long-polls
        # wake, and /sync gives it to nobody else (SyncHandler keeps it apart
        # from the room's shared read).
        self.hs.notifier.notify([user_id] if receipt_type == "m.read.private" else [room_id], position)


class ReadMarkerServlet(ReceiptServlet):
    PATTERNS = client_patterns(f"/rooms/{ROOM}/read_markers$")

    def on_POST(self, request: SynapseRequest, room_id: str) -> tuple[int, Any]:  # type: ignore[override]
        requester = self.auth.get_user_by_req(request)
        body = parse_json_object_from_request(request)
        for receipt_type in ("m.fully_read", *RECEIPT_TYPES):
            event_id = body.get(receipt_type)
            if isinstance(event_id, str):
                self._mark(requester.user_id, room_id, receipt_type, event_id)
        return 200, {}


class DirectoryServlet(_RoomServlet):
    PATTERNS = client_patterns("/directory/room/(?P<alias>[^/]*)$", v1=True)

    def on_GET(self, request: SynapseRequest, alias: str) -> tuple[int, Any]:
        room_id = self.store.get_room_for_alias(alias)
        if room_id is None:
            raise NotFoundError(f"Room alias {alias} not found")
        return 200, {"room_id": room_id, "servers": [self.hs.config.server_name]}

    def on_PUT(self, request: SynapseRequest, alias: str) -> tuple[int, Any]:
        requester = self.auth.get_user_by_req(request)
        body = parse_json_object_from_request(request)
        room_id = body.get("room_id")
        if not isinstance(room_id, str):
            raise SynapseError(400, "Missing room_id", Codes.MISSING_PARAM)
        if not alias.startswith("#") or not alias.endswith(f":{self.hs.config.server_name}"):
            raise SynapseError(400, "Alias must be local", Codes.INVALID_PARAM)
        self.rooms.require_joined(room_id, requester.user_id)
        with self.store.db.transaction() as txn:
            if not self.store.add_alias(txn, alias, room_id):
                raise SynapseError(409, "Room alias already taken", Codes.ROOM_IN_USE)
        return 200, {}


SERVLETS = (
    CreateRoomServlet,
    JoinRoomAliasServlet,
    RoomMembershipServlet,
    RoomRedactServlet,
    RoomSendEventServlet,
    RoomStateEventServlet,
    RoomStateServlet,
    RoomMessagesServlet,
    RoomEventServlet,
    JoinedMembersServlet,
    MembersServlet,
    JoinedRoomsServlet,
    RoomTypingServlet,
    ReceiptServlet,
    ReadMarkerServlet,
    DirectoryServlet,
)
