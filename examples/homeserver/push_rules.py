"""The server-default push rules, as the Client-Server spec lists them ("Predefined Rules").

Clients read them from ``GET /pushrules/`` to show and evaluate
notifications; a server that answers with empty lists makes each client
fill in its own idea of the defaults. The rules below follow the spec's
order within each kind (override, content, underride); the homeserver
stores no user-defined rules, so these are the whole rule set.
"""

from __future__ import annotations

from typing import Any

JsonDict = dict[str, Any]

SOUND = {"set_tweak": "sound", "value": "default"}
HIGHLIGHT = {"set_tweak": "highlight"}


def _match(key: str, pattern: str) -> JsonDict:
    return {"kind": "event_match", "key": key, "pattern": pattern}


def _rule(rule_id: str, conditions: list[JsonDict], actions: list[Any], enabled: bool = True) -> JsonDict:
    return {
        "rule_id": rule_id,
        "default": True,
        "enabled": enabled,
        "conditions": conditions,
        "actions": actions,
    }


def server_default_rules(user_id: str) -> JsonDict:
    """The ``global`` rule set for `user_id` (some rules name the user)."""
    localpart = user_id[1:].split(":", 1)[0]
    room_permission = {"kind": "sender_notification_permission", "key": "room"}
    override = [
        _rule(".m.rule.master", [], [], enabled=False),
        _rule(".m.rule.suppress_notices", [_match("content.msgtype", "m.notice")], []),
        _rule(
            ".m.rule.invite_for_me",
            [
                _match("type", "m.room.member"),
                _match("content.membership", "invite"),
                _match("state_key", user_id),
            ],
            ["notify", SOUND],
        ),
        _rule(".m.rule.member_event", [_match("type", "m.room.member")], []),
        _rule(
            ".m.rule.is_user_mention",
            [{"kind": "event_property_contains", "key": "content.m\\.mentions.user_ids", "value": user_id}],
            ["notify", SOUND, HIGHLIGHT],
        ),
        _rule(
            ".m.rule.contains_display_name", [{"kind": "contains_display_name"}], ["notify", SOUND, HIGHLIGHT]
        ),
        _rule(
            ".m.rule.is_room_mention",
            [
                {"kind": "event_property_is", "key": "content.m\\.mentions.room", "value": True},
                room_permission,
            ],
            ["notify", HIGHLIGHT],
        ),
        _rule(".m.rule.roomnotif", [_match("content.body", "@room"), room_permission], ["notify", HIGHLIGHT]),
        _rule(
            ".m.rule.tombstone",
            [_match("type", "m.room.tombstone"), _match("state_key", "")],
            ["notify", HIGHLIGHT],
        ),
        _rule(".m.rule.reaction", [_match("type", "m.reaction")], []),
        _rule(".m.rule.room.server_acl", [_match("type", "m.room.server_acl"), _match("state_key", "")], []),
        _rule(
            ".m.rule.suppress_edits",
            [{"kind": "event_property_is", "key": "content.m\\.relates_to.rel_type", "value": "m.replace"}],
            [],
        ),
    ]
    content = [
        {
            "rule_id": ".m.rule.contains_user_name",
            "default": True,
            "enabled": True,
            "pattern": localpart,
            "actions": ["notify", SOUND, HIGHLIGHT],
        }
    ]
    one_to_one = {"kind": "room_member_count", "is": "2"}
    underride = [
        _rule(
            ".m.rule.call",
            [_match("type", "m.call.invite")],
            ["notify", {"set_tweak": "sound", "value": "ring"}],
        ),
        _rule(
            ".m.rule.encrypted_room_one_to_one",
            [one_to_one, _match("type", "m.room.encrypted")],
            ["notify", SOUND],
        ),
        _rule(".m.rule.room_one_to_one", [one_to_one, _match("type", "m.room.message")], ["notify", SOUND]),
        _rule(".m.rule.message", [_match("type", "m.room.message")], ["notify"]),
        _rule(".m.rule.encrypted", [_match("type", "m.room.encrypted")], ["notify"]),
    ]
    return {"override": override, "content": content, "room": [], "sender": [], "underride": underride}
