"""JSON encoders: canonical (byte-identical to `canonicaljson`) and compact.

orjson with sorted keys produces the same bytes as
`canonicaljson.encode_canonical_json` for strings, keys, 64-bit integers and
most floats, an order of magnitude faster. Where it differs we fall back to
the standard library's encoder (canonicaljson itself for canonical JSON), so
the result is always canonicaljson's, or its exception:

* integers beyond 64 bits, non-`str` keys, lone surrogates, subclasses of
  builtins, nesting beyond orjson's limit, cycles and unknown types: orjson
  refuses them (TypeError);
* floats whose orjson text differs from Python's `repr`: exactly the tokens
  `0.0000…` (1e-6 <= abs(x) < 1e-4; Python writes `2.5e-05`) and those with a
  one-digit negative exponent (orjson `1e-7`, Python `1e-07`);
* NaN and infinities: orjson writes `null`, canonicaljson raises ValueError.

The output is checked for those tokens, not the input: walking 20 MB of
Python objects costs about as much as orjson itself, even compiled, while a
substring search runs in C over the bytes. Each search looks for the token
text (`0.0000`, `null`, and `e-` only if the body holds a `-` at all);
a hit inside a string is dismissed from the bytes around it, since a real
token starts right after `:`, `,` or `[` and ends before `,`, `]` or `}`.
A real `0.0000…` or `…e-7` token means a fallback; a real `null` may be
`None`, so it costs one walk of the input looking for NaN and infinities
(still far cheaper than the fallback encoder).

Cost: the `-` test is a memchr (~2 ms for 20 MB); each of the other two
searches runs at about 1 byte/ns (~15 ms for 20 MB, a quarter of orjson's
time). `bytes.find`, `re` and libc `memmem` measured alike; one regex
alternation over both texts is several times slower, and a compiled build
does not change them (the time is in C already).

Not detected: types orjson serialises natively although the standard
library refuses them (`enum.Enum` members that do not subclass `int`/`str`,
`uuid.UUID`, `orjson.Fragment`); for those we return orjson's bytes where
canonicaljson raises TypeError. Seeing them needs the input walk above on
every body, which costs about what orjson does.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from math import isfinite
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

# A value token starts after one of these (or at the start of the body) and
# ends before one of _TOKEN_END (or at its end); inside a string, the same
# text has other neighbours or is dismissed conservatively (a fallback).
_TOKEN_START = frozenset(b":,[")
_TOKEN_END = frozenset(b",]}")
_MANTISSA = frozenset(b"0123456789.")
# "e-" between a digit and exactly one digit: the tail of `1e-7`, or of a
# string such as "v2e-5"; the regex engine drops every other "e-" in C.
_SHORT_NEGATIVE_EXPONENT = re.compile(rb"e-[0-9](?![0-9])(?<=[0-9]e-[0-9])")


def _reject(obj: object) -> Any:
    raise TypeError(f"{type(obj).__name__} is not JSON serializable here")


def _starts_token(encoded: bytes, i: int) -> bool:
    """Whether a number token could start at `i` (a `-` sign before it included)."""
    if i and encoded[i - 1] == 0x2D:  # "-"
        i -= 1
    return i == 0 or encoded[i - 1] in _TOKEN_START


def _tiny_positional_token(encoded: bytes) -> bool:
    """Whether a `0.0000…` number token (1e-6 <= abs(x) < 1e-4) is in `encoded`."""
    i = encoded.find(b"0.0000")
    while i != -1:
        if _starts_token(encoded, i):
            return True
        i = encoded.find(b"0.0000", i + 1)
    return False


def _short_negative_exponent_token(encoded: bytes) -> bool:
    """Whether a number token with a one-digit negative exponent (`1e-7`) is in `encoded`."""
    # `in` for one byte is a memchr: a body without "-" cannot hold "e-".
    if b"-" not in encoded:
        return False
    for match in _SHORT_NEGATIVE_EXPONENT.finditer(encoded):
        start = match.start()
        while start and encoded[start - 1] in _MANTISSA:
            start -= 1
        if _starts_token(encoded, start):
            return True
    return False


def _null_token(encoded: bytes) -> bool:
    """Whether a `null` value token (None, or NaN/infinity from orjson) is in `encoded`."""
    end = len(encoded)
    i = encoded.find(b"null")
    while i != -1:
        after = i + 4
        if (i == 0 or encoded[i - 1] in _TOKEN_START) and (after == end or encoded[after] in _TOKEN_END):
            return True
        i = encoded.find(b"null", after)
    return False


def _all_floats_finite(obj: object) -> bool:
    """Whether no float in `obj` is NaN or infinite (`obj` as orjson accepted it: acyclic)."""
    root = type(obj)
    if root is float:
        return isfinite(obj)  # type: ignore[arg-type]
    if root is not dict and root is not list and root is not tuple:
        return True
    stack: list[Any] = [obj]
    pop, push = stack.pop, stack.append
    while stack:
        container = pop()
        for value in container.values() if type(container) is dict else container:
            kind = type(value)
            if kind is str or kind is int or value is None or kind is bool:
                continue
            if kind is dict or kind is list or kind is tuple:
                push(value)
            elif kind is float and not isfinite(value):
                return False
    return True


def _may_differ(encoded: bytes, obj: object) -> bool:
    """Whether orjson's `encoded` form of `obj` may differ from the standard library's.

    False is a proof that it does not (for what orjson accepted; see the
    module docstring); True sends the caller to the fallback encoder.
    """
    # A small body usually holds none of the texts: three `in` tests, no calls.
    if len(encoded) < 4096 and b"0.0000" not in encoded and b"e-" not in encoded and b"null" not in encoded:
        return False
    if _tiny_positional_token(encoded) or _short_negative_exponent_token(encoded):
        return True
    return _null_token(encoded) and not _all_floats_finite(obj)


_compact_fallback = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))

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
    if not _flat_without_floats(obj) and _may_differ(encoded, obj):
        return canonicaljson.encode_canonical_json(obj)
    return encoded


def encode_json(obj: object) -> bytes:
    """Compact, non-canonical JSON (keys in insertion order), UTF-8."""
    try:
        encoded = orjson.dumps(obj, default=_reject, option=_COMPACT_OPTS)
    except TypeError:
        return _compact_fallback.encode(obj).encode("utf-8")
    if _may_differ(encoded, obj):
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
    # A loop, not `any(<generator>)`: every JSON result under gevent comes
    # here, and building the generator costs more than a small dict's check.
    for value in values:  # noqa: SIM110 - see above
        if isinstance(value, (dict, list, tuple)) and len(value) > threshold:
            return True
    return False


def iter_encode_canonical_json(obj: object, piece_size: int = 64 * 1024) -> Iterator[bytes]:
    """Encode `obj` canonically in pieces of roughly `piece_size` bytes.

    The concatenation equals `encode_canonical_json(obj)`. Lists are encoded in
    batches (a batch's encoding, brackets dropped, is its items joined by
    commas); dicts key by key in sorted order.
    """
    yield from _iter_encode(obj, piece_size, _SPLIT_DEPTH, encode_canonical_json, True)


def iter_encode_json(obj: object, piece_size: int = 64 * 1024) -> Iterator[bytes]:
    """`encode_json(obj)` (compact, keys in insertion order) in pieces of roughly `piece_size` bytes."""
    yield from _iter_encode(obj, piece_size, _SPLIT_DEPTH, encode_json, False)


def _iter_encode(
    obj: object, piece_size: int, depth: int, encode: Callable[[object], bytes], sort_keys: bool
) -> Iterator[bytes]:
    if depth and isinstance(obj, dict) and all(type(k) is str for k in obj):
        sep = b"{"
        for key in sorted(obj) if sort_keys else obj:
            yield sep + encode(key) + b":"
            yield from _iter_encode(obj[key], piece_size, depth - 1, encode, sort_keys)
            sep = b","
        yield b"}" if obj else b"{}"
    elif depth and isinstance(obj, (list, tuple)) and len(obj) > 1:
        yield from _iter_encode_list(obj, piece_size, encode)
    else:
        yield encode(obj)


def _iter_encode_list(
    items: list[Any] | tuple[Any, ...], piece_size: int, encode: Callable[[object], bytes]
) -> Iterator[bytes]:
    sep = b"["
    batch = 16
    start = 0
    while start < len(items):
        encoded = encode(list(items[start : start + batch]))
        yield sep + encoded[1:-1]
        sep = b","
        start += batch
        # Aim the next batch at piece_size bytes from what this one cost.
        per_item = max(1, len(encoded) // batch)
        batch = max(1, piece_size // per_item)
    yield b"]"
