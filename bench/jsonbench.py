"""Group c: canonical JSON encoding of a ~20 MB event list."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, cast

import orjson
from canonicaljson import encode_canonical_json

from bench.candidates import SYNWSGI, import_attr
from bench.model import Group, Target
from bench.peers.common import build_events
from bench.timing import NS_PER_MS, Prepared, loop_sampler, measure_group

Encoder = Callable[[Any], bytes]

CANONICALJSON = "canonicaljson"
ORJSON = "orjson OPT_SORT_KEYS"
NAMES = (CANONICALJSON, ORJSON, SYNWSGI)
TARGET = Target("<=", 0.10, "<=0.10x canonicaljson", CANONICALJSON)
SIZE_PROBE_EVENTS = 1000


def orjson_sorted(obj: Any) -> bytes:
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)


def _encoder(name: str) -> Encoder:
    if name == CANONICALJSON:
        return cast(Encoder, encode_canonical_json)
    if name == ORJSON:
        return orjson_sorted
    return cast(Encoder, import_attr("synwsgi.jsonenc", "encode_canonical_json"))


def events_of_size(target_bytes: int) -> dict[str, Any]:
    """An event list whose canonical JSON is about ``target_bytes`` long."""
    probe = len(encode_canonical_json(build_events(SIZE_PROBE_EVENTS)))
    return build_events(max(1, target_bytes * SIZE_PROBE_EVENTS // probe))


def _prepare(name: str, obj: Any, reference: bytes) -> Prepared:
    """(round sampler in ms/encode, identity note) for encoder ``name``."""
    encode = _encoder(name)
    same = encode(obj) == reference
    note = "byte-identical" if same else "OUTPUT DIFFERS from canonicaljson"
    return loop_sampler(partial(encode, obj), 1, 1, NS_PER_MS), note


def run_json(target_mb: float, rounds: int, budget_s: float) -> Group:
    obj = events_of_size(int(target_mb * 1024 * 1024))
    reference = encode_canonical_json(obj)
    group = Group(
        "json",
        f"Canonical JSON of {len(obj['items'])} events ({len(reference) / 2**20:.1f} MiB)",
        "ms",
        baseline=CANONICALJSON,
        targets={SYNWSGI: TARGET},
        note="one encode per sample; output compared with canonicaljson's",
    )
    prepare = partial(_prepare, obj=obj, reference=reference)
    return measure_group(group, NAMES, prepare, rounds, budget_s)
