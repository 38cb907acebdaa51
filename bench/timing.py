"""Timing primitives: rotated rounds, calibrated in-process loops."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import TypeVar

from bench.model import Group

T = TypeVar("T")

NS_PER_US = 1_000
NS_PER_MS = 1_000_000


def rotated(names: Sequence[str], round_index: int) -> list[str]:
    """``names`` rotated left by ``round_index`` (fair ordering across rounds)."""
    if not names:
        return []
    shift = round_index % len(names)
    return [*names[shift:], *names[:shift]]


def rotate_rounds(
    names: Sequence[str],
    run_one: Callable[[str], T],
    rounds: int,
    budget_s: float,
    min_rounds: int = 1,
) -> dict[str, list[T]]:
    """Run ``run_one(name)`` for every name, ``rounds`` times, rotating order.

    Stops starting new rounds once ``budget_s`` has elapsed (but always does
    ``min_rounds``), so a pathologically slow candidate cannot blow the budget.
    """
    results: dict[str, list[T]] = {name: [] for name in names}
    deadline = time.monotonic() + budget_s
    for index in range(rounds):
        if index >= min_rounds and time.monotonic() > deadline:
            break
        for name in rotated(names, index):
            results[name].append(run_one(name))
    return results


def time_loop_ns(fn: Callable[[], object], iterations: int) -> int:
    """Nanoseconds for ``iterations`` calls of ``fn`` with the GC disabled."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter_ns()
        for _ in range(iterations):
            fn()
        return time.perf_counter_ns() - start
    finally:
        if was_enabled:
            gc.enable()


def calibrate(
    fn: Callable[[], object],
    round_seconds: float,
    max_iterations: int = 2_000_000,
) -> int:
    """Iterations of ``fn`` that take about ``round_seconds`` (at least 1)."""
    iterations, elapsed = 1, 0
    while iterations < max_iterations:
        elapsed = time_loop_ns(fn, iterations)
        if elapsed >= 20 * NS_PER_MS or elapsed >= round_seconds * 1e9:
            break
        iterations *= 4
    per_call = max(elapsed / iterations, 1.0)
    return int(min(max(round_seconds * 1e9 / per_call, 1), max_iterations))


def loop_sampler(
    fn: Callable[[], object], iterations: int, units_per_call: int, ns_per_unit: int
) -> Callable[[], float]:
    """A round runner: time the loop, return the cost of one unit of work
    (a request, a match...) expressed in ``ns_per_unit`` (e.g. us or ms)."""

    def sample() -> float:
        gc.collect()
        elapsed = time_loop_ns(fn, iterations)
        return elapsed / (iterations * units_per_call) / ns_per_unit

    return sample


Prepared = tuple[Callable[[], float], str]  # (round sampler, note)


def measure_group(
    group: Group,
    names: Sequence[str],
    prepare: Callable[[str], Prepared],
    rounds: int,
    budget_s: float,
) -> Group:
    """Prepare every candidate (recording unavailable/error rows), then
    sample all prepared ones in rotated rounds and add their rows."""
    samplers: dict[str, Callable[[], float]] = {}
    notes: dict[str, str] = {}
    for name in names:
        prepared = group.attempt(name, partial(prepare, name))
        if prepared is not None:
            samplers[name], notes[name] = prepared
    results = rotate_rounds(list(samplers), lambda n: samplers[n](), rounds, budget_s)
    group.add_results(results, notes)
    group.order(names)
    return group
