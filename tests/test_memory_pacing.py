"""Memory under gevent: big bodies freed in slices, full collections paced (`runtime`, `collector`).

The end-to-end effect (a small request's worst wait while big bodies built
per request are sent) is measured by `bench/fairness.py`; these tests pin the
two mechanisms down in-process.
"""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import gevent
import pytest

from synwsgi._internal.collector import GCPacer, release_in_slices


class Payload:
    """A weak-referenceable item, to see when it is freed."""


def _tree(count: int) -> tuple[dict[str, list[Payload]], list[weakref.ref[Payload]]]:
    items = [Payload() for _ in range(count)]
    refs = [weakref.ref(item) for item in items]
    return {"items": items}, refs


def test_an_unshared_body_is_freed_in_slices() -> None:
    body, refs = _tree(5000)
    seen_alive: list[int] = []

    def pause() -> None:
        seen_alive.append(sum(ref() is not None for ref in refs))

    holder: list[object] = [body]
    del body
    release_in_slices(holder, pause, interval=0.0)
    assert all(ref() is None for ref in refs)
    # Freed a slice at a time: the pauses saw it shrink, never all of it at once.
    assert len(seen_alive) >= 5
    assert seen_alive == sorted(seen_alive, reverse=True)
    assert 0 < seen_alive[0] < 5000


def test_a_body_the_application_keeps_is_not_touched() -> None:
    body, refs = _tree(3000)
    cached = body  # e.g. a cache of the application
    holder: list[object] = [body]
    del body
    release_in_slices(holder, lambda: None, interval=0.0)
    assert len(cached["items"]) == 3000
    assert all(ref() is not None for ref in refs)


def test_a_shared_list_under_an_unshared_dict_is_kept() -> None:
    items = [Payload() for _ in range(2000)]
    holder: list[object] = [{"items": items, "other": [Payload() for _ in range(2000)]}]
    release_in_slices(holder, lambda: None, interval=0.0)
    assert len(items) == 2000


@pytest.fixture
def pacer() -> Iterator[GCPacer]:
    busy = [False]
    pacing = GCPacer(lambda: busy[0], min_interval=0.0, max_delay=60.0)
    pacing.busy_flag = busy  # type: ignore[attr-defined]
    before = gc.get_threshold()
    pacing.start(gevent.get_hub().loop)
    try:
        yield pacing
    finally:
        pacing.stop()
        assert gc.get_threshold() == before


def _cycles(count: int) -> weakref.ref[Payload]:
    """`count` reference cycles, the last one watched; enough for young collections to age them."""
    last = None
    for _ in range(count):
        a, b = Payload(), Payload()
        a.other, b.other = b, a  # type: ignore[attr-defined]
        last = a
    assert last is not None
    return weakref.ref(last)


def test_cpython_no_longer_starts_full_collections(pacer: GCPacer) -> None:
    assert gc.get_threshold()[2] > 10**9
    collected: list[int] = []

    def record(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            collected.append(info["generation"])

    gc.callbacks.append(record)
    try:
        _cycles(200_000)
    finally:
        gc.callbacks.remove(record)
    assert 0 in collected and 2 not in collected


def test_the_timer_collects_when_no_big_body_is_sent(pacer: GCPacer) -> None:
    watched = _cycles(50_000)
    assert gc.get_count()[2] > 10
    pacer.busy_flag[0] = True  # type: ignore[attr-defined]
    pacer.tick()
    assert pacer.collections == 0, "collected while a big body was being sent"
    pacer.busy_flag[0] = False  # type: ignore[attr-defined]
    pacer.tick()
    assert pacer.collections == 1
    assert watched() is None, "the cycles were not collected"
    assert gc.get_count()[2] == 0


def test_a_full_collection_runs_anyway_after_max_delay(pacer: GCPacer) -> None:
    _cycles(50_000)
    pacer.busy_flag[0] = True  # type: ignore[attr-defined]
    pacer.max_delay = 0.0
    pacer.tick()
    assert pacer.collections == 1


def test_the_hub_timer_runs_the_check() -> None:
    pacing = GCPacer(lambda: False, min_interval=0.0, check_interval=0.01)
    pacing.start(gevent.get_hub().loop)
    try:
        watched = _cycles(50_000)
        gevent.sleep(0.1)
        assert pacing.collections >= 1
        assert watched() is None
    finally:
        pacing.stop()
