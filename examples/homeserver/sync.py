"""`/sync`: what changed for a user since a stream position, waiting if nothing did.

A sync token is `s<position>`: everything up to that stream position has
been sent. `SyncHandler.wait_for_sync_for_user` reads once; if nothing is new
it parks on the notifier (keys: the user and each joined room) until a write
moves one of them past `since`, or the timeout ends it with an empty answer.
As in Synapse, a sync without `since` (or with `full_state`) answers at once.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from synwsgi import Codes, Notifier, SynapseError

from .rooms import now_ms
from .store import Event, JsonDict, Store, Txn

DEFAULT_TIMELINE_LIMIT = 10
# Room reads kept for the waiters that one write wakes together.
ROOM_CACHE_SIZE = 2048


PRIVATE_RECEIPT = "m.read.private"
# What one read of a room gives every user woken for it: its newest events,
# the ephemeral events all members see, and the private receipts
# (user_id, event_id, ts), each for its owner only.
RoomRead = tuple[list[Event], list[JsonDict], list[tuple[str, str, int]]]


def with_private_receipts(
    ephemeral: list[JsonDict], user_id: str, own: list[tuple[str, int]]
) -> list[JsonDict]:
    """`ephemeral` (shared, left untouched) plus `user_id`'s own private receipts in its m.receipt."""
    merged: list[JsonDict] = []
    receipt: JsonDict | None = None
    for event in ephemeral:
        if event["type"] == "m.receipt":
            receipt = {"type": "m.receipt", "content": {k: dict(v) for k, v in event["content"].items()}}
            merged.append(receipt)
        else:
            merged.append(event)
    if receipt is None:
        receipt = {"type": "m.receipt", "content": {}}
        merged.append(receipt)
    for event_id, ts in own:
        receipt["content"].setdefault(event_id, {})[PRIVATE_RECEIPT] = {user_id: {"ts": ts}}
    return merged


def parse_token(token: str | None) -> int | None:
    if token is None:
        return None
    if len(token) < 2 or token[0] not in "st" or not token[1:].isdigit():
        raise SynapseError(400, f"Invalid stream token {token!r}", Codes.INVALID_PARAM)
    return int(token[1:])


def make_token(position: int) -> str:
    return f"s{position}"


@dataclass
class SyncResult:
    next_batch: int
    joined: dict[str, JsonDict] = field(default_factory=dict)
    invited: dict[str, JsonDict] = field(default_factory=dict)
    left: dict[str, JsonDict] = field(default_factory=dict)
    account_data: list[JsonDict] = field(default_factory=list)

    def __bool__(self) -> bool:
        """Whether there is anything to send (an empty incremental sync waits)."""
        return bool(self.joined or self.invited or self.left or self.account_data)

    def to_json(self) -> JsonDict:
        return {
            "next_batch": make_token(self.next_batch),
            "rooms": {"join": self.joined, "invite": self.invited, "leave": self.left},
            "account_data": {"events": self.account_data},
            "presence": {"events": []},
            "to_device": {"events": []},
            "device_lists": {"changed": [], "left": []},
            "device_one_time_keys_count": {},
        }


@dataclass(frozen=True)
class SyncConfig:
    user_id: str
    txn_prefix: str
    timeline_limit: int = DEFAULT_TIMELINE_LIMIT
    full_state: bool = False


def timeline_limit_from_filter(sync_filter: JsonDict | None) -> int:
    try:
        limit = (sync_filter or {})["room"]["timeline"]["limit"]
    except (KeyError, TypeError):
        return DEFAULT_TIMELINE_LIMIT
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
        return DEFAULT_TIMELINE_LIMIT
    return min(limit, 100)


class SyncHandler:
    def __init__(self, store: Store, notifier: Notifier) -> None:
        self.store = store
        self.notifier = notifier
        self._cache_lock = threading.Lock()
        self._reading: dict[tuple[str, int, int, int], threading.Event] = {}
        self._room_cache: OrderedDict[tuple[str, int, int, int], RoomRead] = OrderedDict()

    def wait_for_sync_for_user(self, config: SyncConfig, since: int | None, timeout_ms: int) -> SyncResult:
        if since is None or config.full_state or timeout_ms <= 0:
            return self.current_sync_for_user(config, since)
        keys = {config.user_id, *self.store.get_rooms_for_user(config.user_id)}
        return self.notifier.wait_for_events(
            keys, since, timeout_ms, lambda position: self.current_sync_for_user(config, since)
        )

    def current_sync_for_user(self, config: SyncConfig, since: int | None) -> SyncResult:
        with self.store.db.transaction(write=False) as txn:
            return self._sync(txn, config, since)

    def _sync(self, txn: Txn, config: SyncConfig, since: int | None) -> SyncResult:
        store = self.store
        user_id = config.user_id
        user = store.get_user_sync_state(txn, user_id, since if since is not None else 0)
        upto = user.position
        result = SyncResult(next_batch=max(upto, since or 0))
        if since is not None and since >= upto and not config.full_state:
            return result
        after = since or 0
        joined = [room for room, membership in user.memberships if membership == "join"]
        invited = [room for room, membership in user.memberships if membership == "invite"]
        # The last membership change per room since `since` (none for an initial sync).
        last_change = {room: (membership, at) for room, membership, at in user.membership_changes}
        if since is None:
            last_change = {}
        newly_joined = {room for room, (membership, _) in last_change.items() if membership == "join"}

        for room_id in joined:
            initial = since is None or config.full_state or room_id in newly_joined
            room = self._joined_room(txn, config, room_id, None if initial else since, upto)
            if room is not None:
                result.joined[room_id] = room

        for room_id in invited:
            if since is None or room_id in last_change:
                result.invited[room_id] = {
                    "invite_state": {"events": self._invite_state(txn, room_id, user_id)}
                }

        for room_id, (membership, at) in last_change.items():
            if membership in ("leave", "ban") and room_id not in joined:
                timeline = store.get_room_events(txn, room_id, after, at, config.timeline_limit)
                timeline.reverse()
                result.left[room_id] = {
                    "timeline": {
                        "events": [e.to_client(config.txn_prefix) for e in timeline],
                        "limited": False,
                    },
                    "state": {"events": []},
                }

        for room_id, data_type, content in user.account_data:
            if room_id == "":
                result.account_data.append({"type": data_type, "content": content})
            elif room_id in result.joined:
                result.joined[room_id]["account_data"]["events"].append(
                    {"type": data_type, "content": content}
                )
        return result

    def _joined_room(
        self, txn: Txn, config: SyncConfig, room_id: str, since: int | None, upto: int
    ) -> JsonDict | None:
        """A joined room's section: the whole room when `since` is None, else what changed."""
        store = self.store
        limit = config.timeline_limit
        newest, ephemeral, private = self._room_changes(txn, room_id, since or 0, upto, limit + 1)
        own = [(event_id, ts) for user_id, event_id, ts in private if user_id == config.user_id]
        if own:
            ephemeral = with_private_receipts(ephemeral, config.user_id, own)
        limited = len(newest) > limit
        timeline = list(reversed(newest[:limit]))
        if since is not None and not timeline and not ephemeral:
            return None
        in_timeline = {event.event_id for event in timeline}
        first = timeline[0].stream_ordering if timeline else upto + 1
        state: list[Event] = []
        if since is None or limited:
            # State up to the start of the timeline (what the client cannot see in it).
            state = [
                event
                for event in store.get_current_state(room_id, txn)
                if event.event_id not in in_timeline
                and event.stream_ordering < first
                and (since is None or event.stream_ordering > since)
            ]
        joined_count = (
            sum(
                1
                for event in store.get_current_state(room_id, txn)
                if event.type == "m.room.member" and event.content.get("membership") == "join"
            )
            if since is None
            else None
        )
        room: JsonDict = {
            "timeline": {
                "events": [event.to_client(config.txn_prefix) for event in timeline],
                "limited": limited,
                "prev_batch": make_token(first - 1),
            },
            "state": {"events": [event.to_client(config.txn_prefix) for event in state]},
            "ephemeral": {"events": ephemeral},
            "account_data": {"events": []},
            "unread_notifications": {"highlight_count": 0, "notification_count": 0},
            "summary": {},
        }
        if joined_count is not None:
            room["summary"] = {"m.joined_member_count": joined_count}
        return room

    def _room_changes(self, txn: Txn, room_id: str, since: int, upto: int, limit: int) -> RoomRead:
        """A room's newest events and its ephemeral events in (since, upto], shared by users.

        When one message wakes thousands of long-polls, they all ask this of
        the same room with the same `since` and `upto`: the answer is read
        once and kept (events are immutable; only positions already
        committed are asked for). Per-user parts are added by the caller:
        private read receipts are kept apart from the shared ephemeral
        events, and each user gets only his own.
        While one request reads it (on PostgreSQL the others run meanwhile),
        the others wait for that read instead of repeating it.
        """
        key = (room_id, since, upto, limit)
        with self._cache_lock:
            cached = self._room_cache.get(key)
            reading = self._reading.get(key) if cached is None else None
            if cached is None and reading is None:
                self._reading[key] = threading.Event()
        if cached is not None:
            return cached
        if reading is not None:
            reading.wait(10)
            with self._cache_lock:
                cached = self._room_cache.get(key)
            # If that read failed, read here (without holding the others up).
            return cached if cached is not None else self._read_room(txn, room_id, since, upto, limit)
        try:
            result = self._read_room(txn, room_id, since, upto, limit)
            with self._cache_lock:
                self._room_cache[key] = result
                if len(self._room_cache) > ROOM_CACHE_SIZE:
                    self._room_cache.popitem(last=False)
            return result
        finally:
            with self._cache_lock:
                self._reading.pop(key).set()

    def _read_room(self, txn: Txn, room_id: str, since: int, upto: int, limit: int) -> RoomRead:
        changes = self.store.get_room_changes(txn, room_id, since, upto, limit)
        ephemeral: list[JsonDict] = []
        if any(stream_id > since for _, _, stream_id in changes.typing):
            now = now_ms()
            typing = sorted(user_id for user_id, expires, _ in changes.typing if expires > now)
            if since > 0 or typing:
                ephemeral.append({"type": "m.typing", "content": {"user_ids": typing}})
        content: dict[str, Any] = {}
        private: list[tuple[str, str, int]] = []
        for user_id, receipt_type, event_id, ts in changes.receipts:
            if receipt_type == PRIVATE_RECEIPT:
                private.append((user_id, event_id, ts))
            else:
                content.setdefault(event_id, {}).setdefault(receipt_type, {})[user_id] = {"ts": ts}
        if content:
            ephemeral.append({"type": "m.receipt", "content": content})
        return changes.events, ephemeral, private

    def _invite_state(self, txn: Txn, room_id: str, user_id: str) -> list[JsonDict]:
        wanted = {
            ("m.room.create", ""),
            ("m.room.name", ""),
            ("m.room.join_rules", ""),
            ("m.room.canonical_alias", ""),
            ("m.room.member", user_id),
        }
        return [
            event.stripped()
            for event in self.store.get_current_state(room_id, txn)
            if (event.type, event.state_key) in wanted
        ]
