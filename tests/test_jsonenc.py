"""The canonical encoders are byte-identical to `canonicaljson.encode_canonical_json`."""

from __future__ import annotations

import contextlib
import enum
import json
import math
from collections import OrderedDict, namedtuple
from typing import Any

import canonicaljson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import synwsgi
from synwsgi.jsonenc import encode_canonical_json, iter_encode_canonical_json

TINY_AND_AWKWARD_FLOATS = [
    1e-7,
    2.5e-05,
    1e-05,
    0.00001234,
    1e-4,
    0.0001,
    0.000123,
    5e-324,
    2.2250738585072014e-308,
    -0.0,
    0.0,
    0.1,
    1.0,
    123.0,
    1e15,
    1e16,
    1e22,
    1.5e300,
    1.7976931348623157e308,
    9007199254740993.0,
    -1e-7,
]

leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=2**63 - 3, max_value=2**64 + 3),
    st.integers(min_value=-(2**100), max_value=2**100),
    st.floats(allow_nan=False, allow_infinity=False),
    st.floats(min_value=1e-12, max_value=1e-3),
    st.sampled_from(TINY_AND_AWKWARD_FLOATS),
    st.text(),
    st.text(alphabet=st.characters(min_codepoint=0x80, max_codepoint=0x10FFFF, exclude_categories=["Cs"])),
    st.sampled_from(["null", "NaN", "e-5", "0.0000", "\u2028", "\x00\x1f\x7f", "</script>", '\\"']),
)

json_values = st.recursive(
    leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=6),
        st.lists(children, max_size=6).map(tuple),
        st.dictionaries(st.text(max_size=6), children, max_size=6),
    ),
    max_leaves=30,
)

FAST = settings(max_examples=120, deadline=None, database=None)


def canonical(obj: Any) -> bytes:
    return canonicaljson.encode_canonical_json(obj)


@FAST
@given(json_values)
def test_encode_canonical_json_is_byte_identical(obj: Any) -> None:
    assert encode_canonical_json(obj) == canonical(obj)


@FAST
@given(json_values)
def test_public_encode_canonical_json_is_byte_identical(obj: Any) -> None:
    assert synwsgi.encode_canonical_json(obj) == canonical(obj)


@settings(max_examples=80, deadline=None, database=None)
@given(
    st.one_of(
        json_values,
        st.lists(leaves, min_size=17, max_size=60),
        st.lists(json_values, min_size=2, max_size=20),
        st.dictionaries(st.text(max_size=4), st.lists(leaves, max_size=40), max_size=5),
    ),
    st.integers(min_value=1, max_value=256),
)
def test_iter_encode_canonical_json_is_byte_identical(obj: Any, piece_size: int) -> None:
    pieces = list(iter_encode_canonical_json(obj, piece_size))
    assert all(isinstance(piece, bytes) for piece in pieces)
    assert b"".join(pieces) == canonical(obj)


@settings(max_examples=50, deadline=None, database=None)
@given(st.dictionaries(st.integers(min_value=-(2**70), max_value=2**70), json_values, max_size=6))
def test_integer_keys(obj: dict[int, Any]) -> None:
    assert encode_canonical_json(obj) == canonical(obj)
    assert b"".join(iter_encode_canonical_json(obj, 8)) == canonical(obj)


@pytest.mark.parametrize("value", TINY_AND_AWKWARD_FLOATS)
def test_awkward_floats(value: float) -> None:
    for obj in (value, [value], {"f": value}, [[1, value, "x"]]):
        assert encode_canonical_json(obj) == canonical(obj)
        assert b"".join(iter_encode_canonical_json(obj, 4)) == canonical(obj)


def test_known_tricky_values() -> None:
    assert encode_canonical_json(1e-7) == b"1e-07"
    assert encode_canonical_json(2.5e-05) == b"2.5e-05"
    assert encode_canonical_json(2**64) == b"18446744073709551616"
    assert encode_canonical_json(-(2**64) - 1) == b"-18446744073709551617"
    assert encode_canonical_json({"b": 1, "a": "\u2603"}) == '{"a":"\u2603","b":1}'.encode()


class Colour(enum.IntEnum):
    RED = 1


Point = namedtuple("Point", ["x", "y"])


@pytest.mark.parametrize(
    "obj",
    [
        {"errcode": synwsgi.Codes.UNKNOWN},
        [synwsgi.Codes.FORBIDDEN, Colour.RED, True, False],
        OrderedDict([("b", 1), ("a", 2)]),
        Point(1, 2),
        {"deep": [[[[[[[[[[1]]]]]]]]]], "x": [[{"y": [[2.5e-05]]}]]},
        [[[] for _ in range(3)] for _ in range(300)],
    ],
)
def test_subclasses_and_odd_containers(obj: Any) -> None:
    assert encode_canonical_json(obj) == canonical(obj)
    assert b"".join(iter_encode_canonical_json(obj, 16)) == canonical(obj)


def test_deep_nesting_beyond_orjson_limit() -> None:
    obj: Any = 1
    for _ in range(400):
        obj = [obj]
    assert encode_canonical_json(obj) == canonical(obj)


def raises_like_canonicaljson(obj: Any) -> type[BaseException]:
    with pytest.raises(Exception) as expected:
        canonical(obj)
    with pytest.raises(Exception) as got:
        encode_canonical_json(obj)
    assert isinstance(got.value, expected.type), (got.value, expected.value)
    with pytest.raises(Exception) as got_iter:
        b"".join(iter_encode_canonical_json(obj, 8))
    assert isinstance(got_iter.value, expected.type), (got_iter.value, expected.value)
    return expected.type


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize(
    "wrap",
    [
        lambda v: v,
        lambda v: [v],
        lambda v: {"a": v},
        lambda v: [1, 2, {"x": [None, v]}],
        lambda v: {"z": 1, "a": [None] * 40 + [v]},
        lambda v: [None] * 100 + [v],
    ],
)
def test_nan_and_infinity_raise_like_canonicaljson(bad: float, wrap: Any) -> None:
    assert raises_like_canonicaljson(wrap(bad)) is ValueError


@settings(max_examples=50, deadline=None, database=None)
@given(json_values, st.sampled_from([math.nan, math.inf, -math.inf]))
def test_nan_anywhere_raises(obj: Any, bad: float) -> None:
    for candidate in ([obj, bad], {"k": obj, "n": bad}, [bad, obj]):
        with pytest.raises(ValueError):
            canonical(candidate)
        with pytest.raises(ValueError):
            encode_canonical_json(candidate)


@pytest.mark.parametrize("obj", ["\ud800", ["ok", "\udfff"], {"\ud83d": 1}, {"a": {"b": "x\udc00y"}}])
def test_lone_surrogates_raise_like_canonicaljson(obj: Any) -> None:
    raises_like_canonicaljson(obj)


@pytest.mark.parametrize("obj", [object(), {"a": {1, 2}}, [b"bytes"], {"a": 1, 2: "mixed keys"}])
def test_unserialisable_raise_like_canonicaljson(obj: Any) -> None:
    assert issubclass(raises_like_canonicaljson(obj), TypeError)


def test_null_values_are_not_mistaken_for_nan() -> None:
    obj = {"a": None, "b": [None, "null"], "null": None}
    assert encode_canonical_json(obj) == canonical(obj)
    assert json.loads(encode_canonical_json(obj)) == obj


def _outcome(encode: Any, obj: Any) -> bytes | type[BaseException]:
    """The bytes, or the type of the exception raised."""
    try:
        return bytes(encode(obj))
    except (ValueError, TypeError) as exc:
        return type(exc)


# Event-like objects with any float (NaN and infinities included) somewhere,
# big enough that the incremental encoder cuts them in several batches.
any_floats = st.floats(allow_nan=True, allow_infinity=True)
events = st.lists(
    st.fixed_dictionaries(
        {"type": st.just("m.room.message"), "origin_server_ts": st.integers(0, 2**53)},
        optional={"content": st.dictionaries(st.text(max_size=4), st.one_of(leaves, any_floats), max_size=3)},
    ),
    min_size=1,
    max_size=120,
)


@settings(max_examples=60, deadline=None, database=None)
@given(events, st.integers(min_value=1, max_value=512))
def test_every_encoder_agrees_with_canonicaljson_on_any_float(items: list[Any], piece_size: int) -> None:
    obj = {"chunk": items, "next_batch": "s1_2"}
    expected = _outcome(canonical, obj)
    assert _outcome(encode_canonical_json, obj) == expected
    assert _outcome(lambda o: b"".join(iter_encode_canonical_json(o, piece_size)), obj) == expected


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("position", [0, 500, 1999])
def test_incremental_encoding_refuses_nan_in_any_batch(bad: float, position: int) -> None:
    items: list[Any] = [{"i": i, "f": 0.5} for i in range(2000)]
    items[position] = {"i": position, "f": bad}
    with pytest.raises(ValueError):
        canonical({"items": items})
    with pytest.raises(ValueError):
        b"".join(iter_encode_canonical_json({"items": items}, 1024))


# What the proof in synwsgi.jsonenc relies on about orjson's output. Each test
# fails if an orjson release changes the behaviour, before a body could go out
# different from canonicaljson's.


def _float_samples() -> list[float]:
    import random
    import struct

    rng = random.Random(12)
    samples = [
        s * m * 10.0**e for e in range(-330, 309) for m in (1.0, 2.5, 1.2345678901234567) for s in (1, -1)
    ]
    samples += [struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0] for _ in range(30000)]
    samples += [rng.uniform(1e-10, 1e-3) for _ in range(10000)]
    samples += [math.nextafter(x, 0.0) for x in (1e-4, 1e-5, 1e-6, 1e-9, 1e-10, 1e16, 1e15)]
    return [x for x in samples if math.isfinite(x)]


def test_orjson_floats_differ_from_repr_exactly_where_the_scans_look() -> None:
    """orjson's float text equals `repr` except for `0.0000…` and one-digit negative exponents."""
    import orjson

    from synwsgi.jsonenc import _short_negative_exponent_token, _tiny_positional_token

    differing = 0
    for value in _float_samples():
        ours = orjson.dumps([value])
        flagged = _tiny_positional_token(ours) or _short_negative_exponent_token(ours)
        same = ours == b"[" + repr(value).encode() + b"]"
        assert same != flagged, (value, ours)
        differing += not same
    assert differing > 1000  # the samples do reach both kinds of divergent floats


def test_orjson_writes_nan_and_infinities_as_null() -> None:
    import orjson

    assert orjson.dumps([math.nan, math.inf, -math.inf]) == b"[null,null,null]"


def test_orjson_strings_and_keys_match_the_standard_library() -> None:
    """Escaping (controls, DEL, U+2028/9, quotes, slash) and key order by code point."""
    import orjson

    everything = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF)
    expected = json.dumps(everything, ensure_ascii=False, separators=(",", ":")).encode()
    assert orjson.dumps(everything) == expected
    keys = {
        "\uffff": 1,
        "\U00010000": 2,
        "\ue000": 3,
        "a": 4,
        "A": 5,
        "": 6,
        "\x7f": 7,
        "é": 8,
        "\U0010ffff": 9,
    }
    assert orjson.dumps(keys, option=orjson.OPT_SORT_KEYS) == canonical(keys)


@pytest.mark.parametrize("value", [0, -1, 2**53, 2**63 - 1, 2**63, 2**64 - 1, -(2**63) + 1, -(2**63)])
def test_orjson_integers_match_the_standard_library_or_are_refused(value: int) -> None:
    import orjson

    with contextlib.suppress(orjson.JSONEncodeError):
        assert orjson.dumps(value) == str(value).encode()
    assert encode_canonical_json(value) == canonical(value)


@pytest.mark.parametrize(
    "text",
    [
        "null",
        "nullable",
        "a:null,b",
        "0.00001",
        "v0.00001",
        "e-mail 1e-7x",
        "x1e-7",
        "1e-10",
        "2.5e-05",
        "-0.0000",
    ],
)
def test_token_lookalikes_inside_strings_cost_no_fallback(text: str) -> None:
    """Strings that hold the suspicious text are dismissed from their neighbours, not re-encoded."""
    import orjson

    from synwsgi.jsonenc import _may_differ

    obj = {"events": [{"body": text, "n": 1}, text]}
    encoded = orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)
    assert not _may_differ(encoded, obj)
    assert encode_canonical_json(obj) == canonical(obj)


@pytest.mark.parametrize(
    "value",
    [1e-7, -1e-7, 2.5e-05, -2.5e-05, 1.5e-9, 0.00001234, 1e-6],
)
@pytest.mark.parametrize(
    "wrap", [lambda v: v, lambda v: [v], lambda v: [1, v], lambda v: {"a": v, "b": [None, v]}]
)
def test_divergent_float_tokens_are_found_anywhere(value: float, wrap: Any) -> None:
    import orjson

    from synwsgi.jsonenc import _may_differ

    obj = wrap(value)
    assert _may_differ(orjson.dumps(obj, option=orjson.OPT_SORT_KEYS), obj)
    assert encode_canonical_json(obj) == canonical(obj)


def test_none_alongside_finite_floats_keeps_orjson_bytes() -> None:
    """A real `null` token costs a walk for NaN, not a fallback, when there is none."""
    import orjson

    from synwsgi.jsonenc import _may_differ

    obj = {"a": None, "b": [None, 0.5, 1e-3, {"c": None}], "d": (None, 2.0)}
    encoded = orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)
    assert not _may_differ(encoded, obj)
    assert encode_canonical_json(obj) == canonical(obj)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_nan_beside_none_is_refused(bad: float) -> None:
    items: list[Any] = [{"i": i, "v": None} for i in range(3000)]
    items[2500]["w"] = (1, [bad])
    for obj in (items, {"items": items}):
        with pytest.raises(ValueError):
            canonical(obj)
        with pytest.raises(ValueError):
            encode_canonical_json(obj)
        with pytest.raises(ValueError):
            b"".join(iter_encode_canonical_json(obj, 512))


def _compact_stdlib(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


@FAST
@given(json_values)
def test_encode_json_matches_the_standard_library(obj: Any) -> None:
    from synwsgi.jsonenc import encode_json

    assert _outcome(encode_json, obj) == _outcome(_compact_stdlib, obj)


@settings(max_examples=60, deadline=None, database=None)
@given(events)
def test_encode_json_agrees_with_the_standard_library_on_any_float(items: list[Any]) -> None:
    from synwsgi.jsonenc import encode_json

    obj = {"chunk": items, "next_batch": None}
    assert _outcome(encode_json, obj) == _outcome(_compact_stdlib, obj)
