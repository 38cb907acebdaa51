"""Time and waiting: the one clock, and the one driver that resolves awaitables.

A WSGI worker has no event loop. Ported Synapse code still `await`s: its
handlers are `async def`, and the lookups it plugs in (access tokens, rate
limit overrides) may be too. Every such awaitable is resolved here, by the
request's `ServerConfig.async_driver` when one is plugged (an asyncio loop
or a Twisted reactor in a thread), else by `run_coroutine`, which runs
coroutines that only await other coroutines.

`MonotonicClock` is the clock synwsgi's caches and limiters use when the
application gives none (Synapse's `Clock` fits where one is asked for).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from types import CoroutineType
from typing import Any

AsyncDriver = Callable[[Any], Any]


class MonotonicClock:
    """Milliseconds and seconds that never jump back with the wall clock."""

    def time_msec(self) -> int:
        return time.monotonic_ns() // 1_000_000

    def time(self) -> float:
        return time.monotonic()


def run_coroutine(coro: Any) -> Any:
    """The default async driver: run an awaitable that completes without an event loop.

    A coroutine (or any awaitable) may await other coroutines, not futures,
    Deferreds or asyncio I/O: plug another driver with
    `ServerConfig(async_driver=...)` for those.
    """
    if type(coro) is CoroutineType:
        iterator: Any = coro
    else:
        await_ = getattr(coro, "__await__", None)
        if await_ is None:
            raise TypeError(f"{type(coro).__name__} is not awaitable")
        iterator = await_()
    try:
        pending = iterator.send(None)
    except StopIteration as stop:
        return stop.value
    close = getattr(iterator, "close", None)
    if close is not None:
        close()
    raise RuntimeError(
        f"an async handler awaited {type(pending).__name__}, which the default async driver cannot "
        "resolve (a WSGI worker has no event loop): plug one with ServerConfig(async_driver=...)"
    )


def resolve(value: Any, driver: AsyncDriver | None = None) -> Any:
    """`value`, or its result when it is awaitable (by `driver`, else `run_coroutine`).

    The common answers (plain values) are told apart first: a `hasattr` that
    misses costs an exception inside.
    """
    if type(value) is tuple or value is None:
        return value
    if type(value) is CoroutineType or hasattr(value, "__await__"):
        return (driver or run_coroutine)(value)
    return value
