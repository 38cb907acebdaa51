"""Rooms: creation, membership, sending; every write notifies the long-polls.

`RoomHandler` is where the homeserver's rules live (who may join, send,
invite), kept to what a chat client needs: public rooms are joinable by
anyone, the others by invitation; members may send and set state. Each
write commits, then calls `Notifier.notify` with the keys the `/sync`
waiters listen on: the room id, and for membership changes the user whose
membership changed (so a user's first sync after an invite or a join wakes).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable
from typing import Any

from synwsgi import AuthError, Codes, NotFoundError, Notifier, SynapseError

from .store import Event, JsonDict, Store, Txn

ROOM_VERSION = "10"

PRESETS: dict[str, dict[str, str]] = {
    "private_chat": {"join_rule": "invite", "history_visibility": "shared"},
    "trusted_private_chat": {"join_rule": "invite", "history_visibility": "shared"},
    "public_chat": {"join_rule": "public", "history_visibility": "shared"},
}


def now_ms() -> int:
    return int(time.time() * 1000)


def random_string(length: int = 18) -> str:
    return secrets.token_urlsafe(length)[:length]


def notify_keys(event: Event) -> list[str]:
    """Who must wake for `event`: the room, and a member whose membership changed."""
    keys = [event.room_id]
    if event.type == "m.room.member" and event.state_key is not None:
        keys.append(event.state_key)
    return keys


class RoomHandler:
    def __init__(self, store: Store, notifier: Notifier, server_name: str) -> None:
        self.store = store
        self.notifier = notifier
        self.server_name = server_name

    # -- helpers ---------------------------------------------------------------

    def new_event_id(self) -> str:
        return f"${random_string(43)}"

    def _notify(self, events: Iterable[Event]) -> None:
        keys: set[str] = set()
        position = 0
        for event in events:
            keys.update(notify_keys(event))
            position = max(position, event.stream_ordering)
        if keys:
            self.notifier.notify(keys, position)

    def _append(
        self,
        txn: Txn,
        room_id: str,
        event_type: str,
        sender: str,
        content: JsonDict,
        state_key: str | None = None,
        txn_key: str | None = None,
    ) -> Event:
        return self.store.persist_event(
            txn, self.new_event_id(), room_id, event_type, state_key, sender, content, now_ms(), txn_key
        )

    def require_joined(self, room_id: str, user_id: str, txn: Txn | None = None) -> None:
        if self.store.get_membership(room_id, user_id, txn) != "join":
            if txn is None and not self.store.room_exists(room_id):
                raise NotFoundError("Unknown room")
            raise AuthError(403, f"User {user_id} not in room {room_id}", Codes.FORBIDDEN)

    def resolve_room(self, room_id_or_alias: str) -> str:
        if room_id_or_alias.startswith("#"):
            room_id = self.store.get_room_for_alias(room_id_or_alias)
            if room_id is None:
                raise NotFoundError(f"Room alias {room_id_or_alias} not found")
            return room_id
        if not room_id_or_alias.startswith("!"):
            raise SynapseError(
                400, f"{room_id_or_alias} was not legal room ID or room alias", Codes.INVALID_PARAM
            )
        return room_id_or_alias

    # -- creating rooms ------------------------------------------------------------

    def create_room(self, creator: str, body: JsonDict) -> tuple[str, str | None]:
        """Create a room from a `/createRoom` body; return (room_id, alias)."""
        preset_name = body.get("preset") or (
            "public_chat" if body.get("visibility") == "public" else "private_chat"
        )
        if preset_name not in PRESETS:
            raise SynapseError(400, f"Unknown preset {preset_name!r}", Codes.INVALID_PARAM)
        preset = PRESETS[preset_name]
        alias = None
        if body.get("room_alias_name") is not None:
            local = body["room_alias_name"]
            if not isinstance(local, str) or not local or ":" in local or any(c.isspace() for c in local):
                raise SynapseError(400, "Invalid characters in room alias", Codes.INVALID_PARAM)
            alias = f"#{local}:{self.server_name}"
            if self.store.alias_taken(alias):
                raise SynapseError(400, "Room alias already taken", Codes.ROOM_IN_USE)
        initial_state = body.get("initial_state", [])
        if not isinstance(initial_state, list) or not all(
            isinstance(item, dict)
            and isinstance(item.get("type"), str)
            and isinstance(item.get("content"), dict)
            for item in initial_state
        ):
            raise SynapseError(
                400, "initial_state must be a list of {type, state_key, content}", Codes.BAD_JSON
            )
        invites = body.get("invite", [])
        if not isinstance(invites, list) or not all(isinstance(user, str) for user in invites):
            raise SynapseError(400, "invite must be a list of user ids", Codes.BAD_JSON)
        for key in ("name", "topic"):
            if key in body and not isinstance(body[key], str):
                raise SynapseError(400, f"{key} must be a string", Codes.BAD_JSON)

        room_id = f"!{random_string()}:{self.server_name}"
        state: list[tuple[str, str, JsonDict]] = [
            (
                "m.room.create",
                "",
                {"creator": creator, "room_version": ROOM_VERSION, **body.get("creation_content", {})},
            ),
            ("m.room.member", creator, {"membership": "join", **self.member_profile(None, creator, "join")}),
            (
                "m.room.power_levels",
                "",
                {
                    "users": {creator: 100},
                    "users_default": 0,
                    "events_default": 0,
                    "state_default": 50,
                    "ban": 50,
                    "kick": 50,
                    "redact": 50,
                    "invite": 0,
                    "events": {},
                },
            ),
        ]
        if alias is not None:
            state.append(("m.room.canonical_alias", "", {"alias": alias}))
        state.append(("m.room.join_rules", "", {"join_rule": preset["join_rule"]}))
        state.append(("m.room.history_visibility", "", {"history_visibility": preset["history_visibility"]}))
        for item in initial_state:
            state.append((item["type"], str(item.get("state_key", "")), item["content"]))
        if "name" in body:
            state.append(("m.room.name", "", {"name": body["name"]}))
        if "topic" in body:
            state.append(("m.room.topic", "", {"topic": body["topic"]}))
        for invitee in invites:
            state.append(
                (
                    "m.room.member",
                    invitee,
                    {"membership": "invite", **self.member_profile(None, invitee, "invite")},
                )
            )

        with self.store.db.transaction() as txn:
            self.store.create_room(txn, room_id, creator)
            if alias is not None and not self.store.add_alias(txn, alias, room_id):
                raise SynapseError(400, "Room alias already taken", Codes.ROOM_IN_USE)
            events = [self._append(txn, room_id, t, creator, content, key) for t, key, content in state]
        self._notify(events)
        return room_id, alias

    # -- membership ----------------------------------------------------------------

    def update_membership(self, sender: str, room_id: str, target: str, membership: str) -> Event:
        with self.store.db.transaction() as txn:
            if not self.store.room_exists(room_id, txn):
                raise NotFoundError("Unknown room")
            current = self.store.get_membership(room_id, target, txn)
            sender_membership = self.store.get_membership(room_id, sender, txn)
            if membership == "join":
                rule = self.store.get_state_event(room_id, "m.room.join_rules", "", txn)
                public = rule is not None and rule.content.get("join_rule") == "public"
                if current not in ("join", "invite") and not public:
                    raise AuthError(403, "You are not invited to this room.", Codes.FORBIDDEN)
                if current == "ban":
                    raise AuthError(403, "You are banned from this room.", Codes.FORBIDDEN)
            elif membership == "invite":
                if sender_membership != "join":
                    raise AuthError(403, f"User {sender} not in room {room_id}", Codes.FORBIDDEN)
                if current in ("join", "ban"):
                    raise AuthError(403, f"{target} is already in the room.", Codes.FORBIDDEN)
                if not self.store.user_exists(target, txn):
                    raise NotFoundError(f"Unknown user {target}")
            elif membership == "leave" and current not in ("join", "invite"):
                raise AuthError(403, f"User {target} not in room {room_id}", Codes.FORBIDDEN)
            content = {"membership": membership, **self.member_profile(txn, target, membership)}
            event = self._append(txn, room_id, "m.room.member", sender, content, target)
        self._notify([event])
        return event

    # -- sending -------------------------------------------------------------------

    def send_event(
        self,
        sender: str,
        room_id: str,
        event_type: str,
        content: JsonDict,
        state_key: str | None = None,
        txn_key: str | None = None,
    ) -> Event:
        """Append an event from a member; with a `txn_key` seen before, return that event.

        The txn key is unique in the database: a retry (from another worker
        or host, or after a restart) fails to insert and gets the stored
        event, with no extra query on the common path.
        """
        if event_type == "m.room.member":
            raise SynapseError(400, "Use the membership endpoints for m.room.member", Codes.BAD_JSON)
        if event_type == "m.room.create":
            raise AuthError(403, "m.room.create cannot be changed", Codes.FORBIDDEN)
        from .store import IntegrityError

        try:
            with self.store.db.transaction() as txn:
                event = self._append(txn, room_id, event_type, sender, content, state_key, txn_key)
                self.require_joined(room_id, sender, txn)
        except IntegrityError:
            # This transaction id was used before (or by a request racing this one).
            existing = self.store.get_event_by_txn(txn_key) if txn_key else None
            if existing is None:
                raise
            return existing
        self._notify([event])
        return event

    def room_state_for(self, room_id: str, user_id: str) -> list[Event]:
        self.require_joined(room_id, user_id)
        return self.store.get_current_state(room_id)

    def joined_members(self, room_id: str, user_id: str) -> dict[str, Any]:
        self.require_joined(room_id, user_id)
        joined: dict[str, Any] = {}
        for member in self.store.get_room_members(room_id, "join"):
            assert member.state_key is not None
            profile = self.store.get_profile(member.state_key) or (None, None)
            joined[member.state_key] = {"display_name": profile[0], "avatar_url": profile[1]}
        return joined

    # -- profiles in member events ---------------------------------------------------

    def member_profile(self, txn: Txn | None, user_id: str, membership: str) -> JsonDict:
        """`displayname`/`avatar_url` for a join or invite member event (as Synapse adds them)."""
        if membership not in ("join", "invite"):
            return {}
        profile = self.store.get_profile(user_id, txn) or (None, None)
        return {
            key: value
            for key, value in zip(("displayname", "avatar_url"), profile, strict=True)
            if value is not None
        }

    def set_profile(self, user_id: str, field: str, value: str | None) -> None:
        """Change a profile field and re-send the user's member event in every joined room.

        Clients show names from member events, not from the profile: without
        the new events, the old name stays in every room.
        """
        with self.store.db.transaction() as txn:
            self.store.set_profile_field(txn, user_id, field, value)
            profile = self.member_profile(txn, user_id, "join")
            events = []
            for room_id in self.store.get_rooms_for_user(user_id, txn=txn):
                current = self.store.get_state_event(room_id, "m.room.member", user_id, txn)
                content = {
                    key: value
                    for key, value in (current.content if current is not None else {}).items()
                    if key not in ("displayname", "avatar_url")
                }
                content.update(profile, membership="join")
                events.append(self._append(txn, room_id, "m.room.member", user_id, content, user_id))
        self._notify(events)
