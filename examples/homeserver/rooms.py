"""Rooms: creation, membership, sending; every write notifies the long-polls.

`RoomHandler` writes every event of a room through one method,
`_authorize`, which checks it with the Matrix authorization rules
(`auth_rules.check_event`) against the room's current state, read in the
same transaction that then stores it: a refused event (403 M_FORBIDDEN)
stores nothing. Room creation checks its initial events the same way
against the state it builds. Each write commits, then calls
`Notifier.notify` with the keys the `/sync` waiters listen on: the room id,
and for membership changes the user whose membership changed (so a user's
first sync after an invite or a join wakes).
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Iterable
from typing import Any

from synwsgi import AuthError, Codes, NotFoundError, Notifier, SynapseError

from .auth_rules import CREATE, POWER_LEVELS, NewEvent, auth_state_keys, check_event
from .redaction import redacted_content
from .store import (
    Event,
    IntegrityError,
    JsonDict,
    Store,
    Txn,
    get_auth_state,
    get_event_in,
    replace_event_content,
)

logger = logging.getLogger(__name__)

ROOM_VERSION = "10"

# The createRoom presets, as Synapse applies them: join rule, history
# visibility, whether invitees get the creator's level, power-level changes.
PRESETS: dict[str, dict[str, Any]] = {
    "private_chat": {
        "join_rule": "invite",
        "history_visibility": "shared",
        "invitees_have_ops": False,
        "power_levels": {"invite": 0},
    },
    "trusted_private_chat": {
        "join_rule": "invite",
        "history_visibility": "shared",
        "invitees_have_ops": True,
        "power_levels": {"invite": 0},
    },
    "public_chat": {
        "join_rule": "public",
        "history_visibility": "shared",
        "invitees_have_ops": False,
        "power_levels": {},
    },
}


def default_power_levels(creator: str) -> JsonDict:
    """A new room's m.room.power_levels before the preset's and the request's changes (Synapse's)."""
    return {
        "users": {creator: 100},
        "users_default": 0,
        "events": {
            "m.room.name": 50,
            "m.room.power_levels": 100,
            "m.room.history_visibility": 100,
            "m.room.canonical_alias": 50,
            "m.room.avatar": 50,
            "m.room.tombstone": 100,
            "m.room.server_acl": 100,
            "m.room.encryption": 100,
        },
        "events_default": 0,
        "state_default": 50,
        "ban": 50,
        "kick": 50,
        "redact": 50,
        "invite": 50,
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

    def _authorize(self, txn: Txn, room_id: str, event: NewEvent) -> None:
        """The one gate every event of an existing room passes: the authorization rules.

        The state is read in the transaction that then writes the event (on
        PostgreSQL under the writers' lock), so no other write slips between
        the check and the write. Outside `create_room` (one transaction) a
        room never holds its create event alone, hence `first_after_create`
        stays False here.
        """
        state = get_auth_state(
            self.store, txn, room_id, auth_state_keys(event.type, event.sender, event.state_key)
        )
        check_event(event, state)

    def _write(
        self,
        txn: Txn,
        room_id: str,
        event_type: str,
        sender: str,
        content: JsonDict,
        state_key: str | None = None,
        txn_key: str | None = None,
    ) -> Event:
        self._authorize(txn, room_id, NewEvent(event_type, sender, content, state_key))
        return self._append(txn, room_id, event_type, sender, content, state_key, txn_key)

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
        """Create a room from a `/createRoom` body; return (room_id, alias).

        Every initial event passes the authorization rules against the state
        the previous ones built (so an `initial_state` entry the creator may
        not send, an `m.room.create` or another user's membership, refuses
        the whole request and nothing is stored).
        """
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
        for key in ("creation_content", "power_level_content_override"):
            if not isinstance(body.get(key, {}), dict):
                raise SynapseError(400, f"{key} must be an object", Codes.BAD_JSON)

        initial = {(item["type"], str(item.get("state_key", ""))): item["content"] for item in initial_state}
        power_levels = initial.pop(POWER_LEVELS, None)
        if power_levels is None:
            power_levels = default_power_levels(creator)
            if preset["invitees_have_ops"]:
                power_levels["users"].update(dict.fromkeys(invites, 100))
            power_levels.update(preset["power_levels"])
            power_levels.update(body.get("power_level_content_override", {}))

        room_id = f"!{random_string()}:{self.server_name}"
        create_content = {
            **body.get("creation_content", {}),
            "creator": creator,
            "room_version": ROOM_VERSION,
        }
        state: list[tuple[str, str, JsonDict]] = [
            ("m.room.create", "", create_content),
            ("m.room.member", creator, {"membership": "join", **self.member_profile(None, creator, "join")}),
            ("m.room.power_levels", "", power_levels),
        ]
        if alias is not None and ("m.room.canonical_alias", "") not in initial:
            state.append(("m.room.canonical_alias", "", {"alias": alias}))
        if ("m.room.join_rules", "") not in initial:
            state.append(("m.room.join_rules", "", {"join_rule": preset["join_rule"]}))
        if ("m.room.history_visibility", "") not in initial:
            state.append(
                ("m.room.history_visibility", "", {"history_visibility": preset["history_visibility"]})
            )
        state += [(event_type, key, content) for (event_type, key), content in initial.items()]
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
            built: dict[tuple[str, str], JsonDict] = {}
            events = []
            for event_type, key, content in state:
                check_event(
                    NewEvent(event_type, creator, content, key),
                    built,
                    first_after_create=list(built) == [CREATE],
                )
                events.append(self._append(txn, room_id, event_type, creator, content, key))
                built[(event_type, key)] = content
        self._notify(events)
        return room_id, alias

    # -- membership ----------------------------------------------------------------

    def update_membership(
        self,
        sender: str,
        room_id: str,
        target: str,
        membership: str,
        reason: str | None = None,
        action: str | None = None,
    ) -> Event:
        """A membership change, through the authorization rules.

        `action` is the endpoint's verb where it adds a condition of its own
        (as Synapse's): `kick` needs a target in the room (joined, invited),
        `unban` a banned one.
        """
        with self.store.db.transaction() as txn:
            if not self.store.room_exists(room_id, txn):
                raise NotFoundError("Unknown room")
            # A join or an invite carries the target's profile (as Synapse's).
            content: JsonDict = {"membership": membership, **self.member_profile(txn, target, membership)}
            if reason is not None:
                content["reason"] = reason
            new = NewEvent("m.room.member", sender, content, target)
            self._authorize(txn, room_id, new)
            if action in ("kick", "unban"):
                current = self.store.get_membership(room_id, target, txn)
                if action == "kick" and current not in ("join", "invite", "knock"):
                    raise AuthError(403, "The target user is not in the room", Codes.FORBIDDEN)
                if action == "unban" and current != "ban":
                    raise SynapseError(
                        403, f"Cannot unban user who was not banned (membership={current})", Codes.BAD_STATE
                    )
            if membership == "invite" and not self.store.user_exists(target, txn):
                raise NotFoundError(f"Unknown user {target}")
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
        """Append an event; with a `txn_key` seen before, return that event.

        The txn key is unique in the database: a retry (from another worker
        or host, or after a restart) fails to insert and gets the stored
        event. An `m.room.redaction` sent here is a redaction (of
        `content.redacts`), as through `/redact`.
        """
        if event_type == "m.room.redaction" and state_key is None:
            redacts = content.get("redacts")
            if not isinstance(redacts, str):
                raise SynapseError(400, "A redaction needs content.redacts", Codes.BAD_JSON)
            return self.redact(sender, room_id, redacts, content, txn_key)
        try:
            with self.store.db.transaction() as txn:
                event = self._write(txn, room_id, event_type, sender, content, state_key, txn_key)
        except (IntegrityError, AuthError):
            # This transaction id was used before (or by a request racing this
            # one): the retry gets that event, even if the sender may no longer send.
            existing = self.store.get_event_by_txn(txn_key) if txn_key else None
            if existing is None:
                raise
            return existing
        self._notify([event])
        return event

    def redact(
        self, sender: str, room_id: str, redacts: str, content: JsonDict, txn_key: str | None = None
    ) -> Event:
        """An `m.room.redaction` of `redacts`, and the redacted event's content stripped.

        The redaction event holds `redacts` in its content (where room
        version 11 keeps it; clients see it at the top level too). The
        stripped content replaces the stored one, so `/messages`, `/sync`
        and `/event` serve it redacted from then on.
        """
        content = {**content, "redacts": redacts}
        try:
            with self.store.db.transaction() as txn:
                target = get_event_in(txn, redacts)
                if target is None or target.room_id != room_id:
                    raise NotFoundError("Event not found.")
                self._authorize(
                    txn,
                    room_id,
                    NewEvent("m.room.redaction", sender, content, None, target.sender, target.type),
                )
                event = self._append(txn, room_id, "m.room.redaction", sender, content, None, txn_key)
                replace_event_content(txn, target, redacted_content(target.type, target.content))
        except (IntegrityError, AuthError):
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
        the new events, the old name stays in every room. Each one is written
        through `_write`, so the authorization rules check it like any member
        event; a room that refuses it is skipped (logged), as Synapse skips
        it, and the profile change stands.
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
                try:
                    # The rules are checked before anything is written: a refusal
                    # leaves the transaction as it was.
                    events.append(self._write(txn, room_id, "m.room.member", user_id, content, user_id))
                except AuthError as exc:
                    logger.warning("profile change of %s not sent to %s: %s", user_id, room_id, exc.msg)
        self._notify(events)
