"""JSON encoders: canonical (byte-identical to `canonicaljson`) and compact.

orjson with sorted keys produces the same bytes as
`canonicaljson.encode_canonical_json` for strings, keys, 64-bit integers and
most floats, an order of magnitude faster. Where it differs we fall back to
canonicaljson itself, so the result is always canonicaljson's:

* integers beyond 64 bits, non-`str` keys, lone surrogates, subclasses of
  builtins and unknown types: orjson refuses them (TypeError);
* floats below 1e-4 (orjson writes `1e-7`/`0.000025`, Python `1e-07`/`2.5e-05`);
* NaN and infinities (orjson writes `null`, canonicaljson raises).

The last two are detected on the output with three scans that each run at
memory speed; a hit (including a harmless one, such as a real `null`) costs
one canonicaljson encode of that piece.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import canonicaljson
import orjson

_CANONICAL_OPTS = (
    orjson.OPT_SORT_KEYS
    | orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_SUBCLASS
)
_COMPACT_OPTS = (
    orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_SUBCLASS
)

# Number tokens where orjson's text may differ from Python's float repr, and
# `null` in value position (which NaN/Infinity turn into). Each pattern starts
# with a literal, so the regex engine skips through the text at memory speed.
_TINY_FLOAT_EXPONENT = re.compile(rb"e-(?<=[0-9]e-)")
_TINY_FLOAT_POSITIONAL = re.compile(rb"0\.0000")
_NULL_VALUE = re.compile(rb"null(?<=[:,\[]null)")


_compact_fallback = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def _reject(obj: object) -> Any:
    raise TypeError(f"{type(obj).__name__} is not JSON serializable here")


def _may_differ(encoded: bytes) -> bool:
    # Small bodies: plain substring tests rule most out at once.
    small = len(encoded) < 4096
    if small and b"e-" not in encoded and b"0.0000" not in encoded and b"null" not in encoded:
        return False
    # `in` for one byte is a memchr: a body without "-" cannot hold "e-".
    return bool(
        (b"-" in encoded and _TINY_FLOAT_EXPONENT.search(encoded))
        or _TINY_FLOAT_POSITIONAL.search(encoded)
        or encoded.startswith(b"null")
        or _NULL_VALUE.search(encoded)
    )


_NO_FLOATS = frozenset((str, int, bool, type(None)))


def _flat_without_floats(obj: object) -> bool:
    """A dict of plain scalars other than floats: nothing in it can differ.

    The usual small response (an error, an id, a few strings) is one of
    these, and this is cheaper than scanning its encoding.
    """
    return type(obj) is dict and _NO_FLOATS.issuperset(map(type, obj.values()))


def encode_canonical_json(obj: object) -> bytes:
    """Encode `obj` exactly as `canonicaljson.encode_canonical_json` does."""
    try:
        encoded = orjson.dumps(obj, default=_reject, option=_CANONICAL_OPTS)
    except TypeError:
        return canonicaljson.encode_canonical_json(obj)
    if not _flat_without_floats(obj) and _may_differ(encoded):
        return canonicaljson.encode_canonical_json(obj)
    return encoded


def encode_json(obj: object) -> bytes:
    """Compact, non-canonical JSON (keys in insertion order), UTF-8."""
    try:
        encoded = orjson.dumps(obj, default=_reject, option=_COMPACT_OPTS)
    except TypeError:
        return _compact_fallback.encode(obj).encode("utf-8")
    if _may_differ(encoded):
        return _compact_fallback.encode(obj).encode("utf-8")
    return encoded


# How deep `iter_encode_canonical_json` splits containers; below this depth a
# value is encoded in one piece.
_SPLIT_DEPTH = 3


def is_large(obj: object, threshold: int = 1000) -> bool:
    """Whether `obj` holds a list or dict of more than `threshold` items near its top.

    Cheap (it looks at two levels only); used to pick incremental encoding.
    """
    if isinstance(obj, dict):
        values: Any = obj.values()
    elif isinstance(obj, (list, tuple)):
        values = obj
    else:
        return False
    if len(obj) > threshold:
        return True
    return any(isinstance(v, (dict, list, tuple)) and len(v) > threshold for v in values)


def iter_encode_canonical_json(obj: object, piece_size: int = 64 * 1024) -> Iterator[bytes]:
    """Encode `obj` canonically in pieces of roughly `piece_size` bytes.

    The concatenation equals `encode_canonical_json(obj)`. Lists are encoded in
    batches (a batch's canonical encoding, brackets dropped, is its items
    joined by commas); dicts key by key in sorted order.
    """
    yield from _iter_encode(obj, piece_size, _SPLIT_DEPTH)


def _iter_encode(obj: object, piece_size: int, depth: int) -> Iterator[bytes]:
    if depth and isinstance(obj, dict) and all(type(k) is str for k in obj):
        sep = b"{"
        for key in sorted(obj):
            yield sep + encode_canonical_json(key) + b":"
            yield from _iter_encode(obj[key], piece_size, depth - 1)
            sep = b","
        yield b"}" if obj else b"{}"
    elif depth and isinstance(obj, (list, tuple)) and len(obj) > 1:
        yield from _iter_encode_list(obj, piece_size)
    else:
        yield encode_canonical_json(obj)


def _iter_encode_list(items: list[Any] | tuple[Any, ...], piece_size: int) -> Iterator[bytes]:
    sep = b"["
    batch = 16
    start = 0
    while start < len(items):
        encoded = encode_canonical_json(list(items[start : start + batch]))
        yield sep + encoded[1:-1]
        sep = b","
        start += batch
        # Aim the next batch at piece_size bytes from what this one cost.
        per_item = max(1, len(encoded) // batch)
        batch = max(1, piece_size // per_item)
    yield b"]"
