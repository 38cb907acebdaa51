"""The Matrix authorization rules: may this event enter the room? One function decides.

`check_event` applies the spec's "Authorization rules" of room version 10
(the version this homeserver creates) to an event about to be written,
against the room's current state. It raises `AuthError(403, M_FORBIDDEN)`
when an event is refused (or `SynapseError(400, M_BAD_JSON)` when its content
is malformed, as Synapse does), and returns when it is allowed; the caller
then writes it, in the same transaction as the state it was checked against.

Implemented, in the spec's order:

1. `m.room.create`: only as the first event of a room.
2. `m.room.member`: join (only oneself; not when banned; public rooms, or
   invite/knock/restricted rooms when invited or joined; the creator's first
   join), invite (inviter joined, target neither joined nor banned, inviter's
   level >= `invite`), leave (oneself from join/invite/knock; otherwise a
   kick or unban: sender joined, level >= `ban` to unban, level >= `kick` and
   above the target's), ban (sender joined, level >= `ban` and above the
   target's); any other membership is refused.
3. Every other event: the sender is joined; the sender's level is at least
   the event's (`events[type]`, else `state_default` for state events and
   `events_default` for the others); a state key starting with `@` is the
   sender's own.
4. `m.room.power_levels`: integer levels (v10), user ids as `users` keys;
   every changed top-level level, `events` and `notifications` entry, old
   and new value, at most the sender's level; other users' entries changed
   or removed only when below the sender's level, and set at most to it.
5. `m.room.redaction` (applied by this server, so checked here as Synapse
   does for v3+ rooms): level >= `redact`, or the redacted event is the
   sender's own; `m.room.create` is never redacted.

Left out: third-party invites (`third_party_invite`), restricted joins
through an authorising server (`join_authorised_via_users_server`), knocking
(a `knock` membership is refused), `m.federate` (no federation), room versions
other than 10, and rules about `auth_events`/`prev_events` (events here form a
single stream checked against the current state).

Levels as the spec defines them without a power-levels event (only while a
room is being created): the creator 100, everyone else 0, `state_default` 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from synwsgi import AuthError, Codes, SynapseError

JsonDict = dict[str, Any]
StateKey = tuple[str, str]
# (type, state_key) -> content: the part of the room's current state the rules read.
AuthState = Mapping[StateKey, JsonDict]

CREATE = ("m.room.create", "")
POWER_LEVELS = ("m.room.power_levels", "")
JOIN_RULES = ("m.room.join_rules", "")

MEMBERSHIPS = ("join", "invite", "leave", "ban", "knock")
# Top-level levels of m.room.power_levels, with the spec's defaults when absent.
NAMED_LEVELS = {
    "users_default": 0,
    "events_default": 0,
    "state_default": 50,
    "ban": 50,
    "kick": 50,
    "redact": 50,
    "invite": 0,
}
# Canonical JSON's integer range, which room version 10 enforces.
_MAX_INT = 2**53 - 1


@dataclass(frozen=True)
class NewEvent:
    """An event about to be written: what the rules look at."""

    type: str
    sender: str
    content: JsonDict
    state_key: str | None = None
    # m.room.redaction: the sender of the event it redacts.
    redacted_sender: str | None = None
    redacted_type: str | None = None


def auth_state_keys(event_type: str, sender: str, state_key: str | None) -> list[StateKey]:
    """The state entries `check_event` reads for such an event (the spec's "auth events")."""
    keys = [CREATE, POWER_LEVELS, ("m.room.member", sender)]
    if event_type == "m.room.member" and state_key is not None:
        keys += [JOIN_RULES, ("m.room.member", state_key)]
    return keys


def forbidden(message: str) -> AuthError:
    return AuthError(403, message, Codes.FORBIDDEN)


def check_event(event: NewEvent, state: AuthState, first_after_create: bool = False) -> None:
    """Raise unless `event` may follow `state`.

    `first_after_create`: the room holds nothing but its create event (the
    creator's own join is then allowed).
    """
    create = state.get(CREATE)
    if event.type == "m.room.create":
        if create is not None:
            raise forbidden("The room already exists: m.room.create cannot be sent again")
        return
    if create is None:
        raise forbidden("No m.room.create event in the room")
    if event.type == "m.room.member":
        _check_membership(event, state, first_after_create)
        return
    if _membership(state, event.sender) != "join":
        raise forbidden(f"User {event.sender} not in room")
    required = event_level(state, event.type, event.state_key is not None)
    level = user_level(state, event.sender)
    if level < required:
        raise forbidden(f"You don't have permission to post that to the room ({level} < {required})")
    if event.state_key is not None and event.state_key.startswith("@") and event.state_key != event.sender:
        raise forbidden("You are not allowed to set others' state")
    if event.type == "m.room.power_levels":
        _check_power_levels(event, state, level)
    elif event.type == "m.room.redaction":
        _check_redaction(event, state, level)


# -- levels ------------------------------------------------------------------------


def _levels(state: AuthState) -> JsonDict | None:
    return state.get(POWER_LEVELS)


def user_level(state: AuthState, user_id: str) -> int:
    levels = _levels(state)
    if levels is None:
        create = state.get(CREATE) or {}
        return 100 if create.get("creator") == user_id else 0
    users = levels.get("users") or {}
    if user_id in users:
        return int(users[user_id])
    return int(levels.get("users_default", 0))


def named_level(state: AuthState, name: str) -> int:
    levels = _levels(state)
    if levels is None:
        return 0 if name == "state_default" else NAMED_LEVELS[name]
    return int(levels.get(name, NAMED_LEVELS[name]))


def event_level(state: AuthState, event_type: str, is_state: bool) -> int:
    levels = _levels(state)
    events = (levels or {}).get("events") or {}
    if event_type in events:
        return int(events[event_type])
    return named_level(state, "state_default" if is_state else "events_default")


def _membership(state: AuthState, user_id: str) -> str | None:
    member = state.get(("m.room.member", user_id))
    membership = member.get("membership") if member is not None else None
    return membership if isinstance(membership, str) else None


# -- m.room.member -------------------------------------------------------------------


def _check_membership(event: NewEvent, state: AuthState, first_after_create: bool) -> None:
    target = event.state_key
    membership = event.content.get("membership")
    if target is None or not isinstance(membership, str):
        raise forbidden("A membership event needs a state_key and a membership")
    sender = event.sender
    create = state.get(CREATE) or {}
    if membership == "join" and first_after_create and target == sender == create.get("creator"):
        return
    sender_membership = _membership(state, sender)
    target_membership = _membership(state, target)
    if membership == "join":
        if sender != target:
            raise forbidden("Cannot force another user to join.")
        if target_membership == "ban":
            raise forbidden("You are banned from this room.")
        join_rule = (state.get(JOIN_RULES) or {}).get("join_rule", "invite")
        if join_rule == "public":
            return
        if join_rule in ("invite", "knock", "restricted", "knock_restricted") and target_membership in (
            "join",
            "invite",
        ):
            return
        raise forbidden("You are not invited to this room.")
    if membership == "invite":
        if sender_membership != "join":
            raise forbidden(f"User {sender} not in room")
        if target_membership in ("join", "ban"):
            raise forbidden(
                f"{target} is {'already in' if target_membership == 'join' else 'banned from'} the room."
            )
        if user_level(state, sender) < named_level(state, "invite"):
            raise forbidden("You don't have permission to invite users")
        return
    if membership == "leave":
        if sender == target:
            if target_membership in ("join", "invite", "knock"):
                return
            raise forbidden(f"User {target} not in room")
        if sender_membership != "join":
            raise forbidden(f"User {sender} not in room")
        level = user_level(state, sender)
        if target_membership == "ban" and level < named_level(state, "ban"):
            raise forbidden(f"You cannot unban user {target}.")
        if level >= named_level(state, "kick") and user_level(state, target) < level:
            return
        raise forbidden(f"You cannot kick user {target}.")
    if membership == "ban":
        if sender_membership != "join":
            raise forbidden(f"User {sender} not in room")
        level = user_level(state, sender)
        if level >= named_level(state, "ban") and user_level(state, target) < level:
            return
        raise forbidden(f"You don't have permission to ban user {target}.")
    if membership == "knock":
        raise forbidden("Knocking is not supported by this server")
    raise forbidden(f"Unknown membership {membership!r}")


# -- m.room.power_levels ---------------------------------------------------------------


def _is_int(value: Any) -> bool:
    return type(value) is int and -_MAX_INT <= value <= _MAX_INT


def _validate_levels(content: JsonDict) -> None:
    """Room version 10: every level an integer; `users` keyed by user ids."""
    for key in NAMED_LEVELS:
        if key in content and not _is_int(content[key]):
            raise SynapseError(400, f"{key} must be an integer", Codes.BAD_JSON)
    for key in ("events", "notifications", "users"):
        if key in content and (
            not isinstance(content[key], dict) or not all(_is_int(v) for v in content[key].values())
        ):
            raise SynapseError(400, f"{key} must be an object of integers", Codes.BAD_JSON)
    for user_id in content.get("users", {}):
        localpart, colon, server = user_id[1:].partition(":")
        if not user_id.startswith("@") or not colon or not localpart or not server:
            raise SynapseError(400, f"Not a valid user id: {user_id!r}", Codes.BAD_JSON)


def _check_power_levels(event: NewEvent, state: AuthState, level: int) -> None:
    new = event.content
    _validate_levels(new)
    old = _levels(state)
    if old is None:
        return
    changes: list[tuple[str, Any, Any]] = [(key, old.get(key), new.get(key)) for key in NAMED_LEVELS]
    for section in ("events", "notifications"):
        old_map, new_map = old.get(section) or {}, new.get(section) or {}
        changes += [(f"{section}.{k}", old_map.get(k), new_map.get(k)) for k in {*old_map, *new_map}]
    for name, before, after in changes:
        if before == after:
            continue
        if (before is not None and int(before) > level) or (after is not None and int(after) > level):
            raise forbidden(f"You don't have permission to change {name} beyond your own level ({level})")
    old_users, new_users = old.get("users") or {}, new.get("users") or {}
    for user_id in {*old_users, *new_users}:
        before, after = old_users.get(user_id), new_users.get(user_id)
        if before == after:
            continue
        if user_id != event.sender and before is not None and int(before) >= level:
            raise forbidden(f"You don't have permission to change the level of {user_id}, at or above yours")
        if after is not None and int(after) > level:
            raise forbidden(f"You don't have permission to give {user_id} a level above your own ({level})")


# -- m.room.redaction --------------------------------------------------------------


def _check_redaction(event: NewEvent, state: AuthState, level: int) -> None:
    if event.redacted_type == "m.room.create":
        raise forbidden("Redacting create events is not permitted")
    if level >= named_level(state, "redact"):
        return
    if event.redacted_sender is not None and event.redacted_sender == event.sender:
        return
    raise forbidden("You don't have permission to redact events")
