"""Shared data, headers and helpers for every peer implementation.

All peers must answer with identical bodies, so everything byte-relevant
lives here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl

from canonicaljson import encode_canonical_json

STATE_RULE = "/_matrix/client/v3/rooms/<room_id>/state/<event_type>"
STATE_PREFIX = "/_matrix/client/v3/rooms/"
STREAM_PATH = "/_demo/stream"
LARGE_PATH = "/_demo/large"

DEFAULT_CHUNK = 65536
MAX_CHUNK = 16 * 1024 * 1024

STATUS_OK = "200 OK"
STATUS_NOT_FOUND = "404 Not Found"

# Headers every JSON response carries (Content-Length is added separately,
# since frameworks compute it themselves).
JSON_HEADERS: tuple[tuple[str, str], ...] = (
    ("Content-Type", "application/json"),
    ("Cache-Control", "no-cache, no-store, must-revalidate"),
    ("Access-Control-Allow-Origin", "*"),
    ("Access-Control-Allow-Methods", "GET, HEAD, POST, PUT, DELETE, OPTIONS"),
    (
        "Access-Control-Allow-Headers",
        "X-Requested-With, Content-Type, Authorization, Date",
    ),
    ("Access-Control-Expose-Headers", "Synapse-Trace-Id, Server"),
)
STREAM_HEADERS: tuple[tuple[str, str], ...] = (("Content-Type", "application/octet-stream"),)

_COMPACT_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)

NOT_FOUND_BODY = b'{"errcode":"M_UNRECOGNIZED","error":"Unrecognized request"}'


def json_headers(body: bytes) -> list[tuple[str, str]]:
    """JSON + CORS headers plus a Content-Length for ``body``."""
    return [*JSON_HEADERS, ("Content-Length", str(len(body)))]


def state_body(room_id: str, event_type: str) -> bytes:
    """Compact, key-sorted JSON body of the state route."""
    obj = {"event_type": event_type, "room_id": room_id, "state_key": ""}
    return _COMPACT_JSON.encode(obj).encode("utf-8")


def wsgi_path(environ: dict[str, Any]) -> str:
    """PATH_INFO decoded back from WSGI latin-1 to real text (UTF-8)."""
    path: str = environ.get("PATH_INFO", "")
    return path.encode("latin-1").decode("utf-8", "replace")


def query_int(query_string: str, name: str, default: int) -> int:
    """First integer value of ``name`` in a query string (>= 0)."""
    for key, value in parse_qsl(query_string):
        if key == name:
            return max(0, int(value))
    return default


def stream_params(query_string: str) -> tuple[int, int]:
    """(total bytes, chunk size) of the streaming demo route."""
    total = query_int(query_string, "bytes", 0)
    chunk = query_int(query_string, "chunk", DEFAULT_CHUNK)
    return total, min(max(chunk, 1), MAX_CHUNK)


def stream_chunks(total: int, chunk: int = DEFAULT_CHUNK) -> Iterator[bytes]:
    """Yield ``total`` bytes in pieces of ``chunk`` bytes (last may be short)."""
    block = b"x" * chunk
    full, rest = divmod(total, chunk)
    for _ in range(full):
        yield block
    if rest:
        yield block[:rest]


def build_event(index: int) -> dict[str, Any]:
    """One Matrix-event-like dict, deterministic for ``index``."""
    return {
        "type": "m.room.message",
        "room_id": f"!room{index % 97}:example.org",
        "event_id": f"$event{index:08d}:example.org",
        "sender": f"@user{index % 389}:example.org",
        "origin_server_ts": 1_700_000_000_000 + index,
        "content": {
            "body": f'message {index}: héllo wörld ✓ "quoted" \\ tab\t',
            "msgtype": "m.text",
        },
        "unsigned": {"age": index * 7},
    }


def build_events(count: int) -> dict[str, Any]:
    """``{"items": [...]}`` with ``count`` event-like dicts."""
    return {"items": [build_event(i) for i in range(count)]}


def large_body(count: int) -> bytes:
    """Canonical JSON of :func:`build_events`."""
    body: bytes = encode_canonical_json(build_events(count))
    return body
