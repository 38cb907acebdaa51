"""The spec's redaction algorithm (room version 10), for the event content this server stores.

A redacted event keeps its top-level keys (this server stores no others than
the ones the algorithm keeps: id, room, sender, type, state key, timestamp)
and, of its content, only the keys that the room's authorization rules need:

* `m.room.member`: `membership`, `join_authorised_via_users_server`;
* `m.room.create`: `creator`;
* `m.room.join_rules`: `join_rule`, `allow`;
* `m.room.power_levels`: `ban`, `events`, `events_default`, `kick`, `redact`,
  `state_default`, `users`, `users_default`;
* `m.room.history_visibility`: `history_visibility`;
* every other type: nothing.

One departure: an `m.room.redaction` keeps `redacts`. Room version 10 keeps
it at the top level of the event, and this server stores it in the content
(where room version 11 moved it), so keeping it there keeps what v10 keeps.
"""

from __future__ import annotations

from typing import Any

KEPT_CONTENT: dict[str, tuple[str, ...]] = {
    "m.room.member": ("membership", "join_authorised_via_users_server"),
    "m.room.create": ("creator",),
    "m.room.join_rules": ("join_rule", "allow"),
    "m.room.power_levels": (
        "ban",
        "events",
        "events_default",
        "kick",
        "redact",
        "state_default",
        "users",
        "users_default",
    ),
    "m.room.history_visibility": ("history_visibility",),
    "m.room.redaction": ("redacts",),
}


def redacted_content(event_type: str, content: dict[str, Any]) -> dict[str, Any]:
    """What is left of `content` once an event of `event_type` is redacted."""
    kept = KEPT_CONTENT.get(event_type, ())
    return {key: value for key, value in content.items() if key in kept}
