"""Full garbage collections, moved out of the way of a gevent worker's big responses.

CPython collects the oldest generation (a *full* collection, walking every
tracked object) once the objects that survived the young generations reach a
quarter of the old ones, in whichever greenlet happens to allocate, so under
gevent every request of the worker waits for it. Building a big body (a
`/sync` of 100 000 events is ~100 000 tracked dicts) triggers several, each
walking the bodies still alive: measured on one gevent worker while two
clients fetch such bodies, 24-97 ms each, which every other request waited
out (the young collections stay short: 700 and ~7 000 objects).

Synapse manages its collector itself (`synapse/metrics/_gc.py`: automatic
collection off, each generation collected from a timer with a minimum time
between collections); on this workload that is worse (its young collections,
run once a second, walked a second of allocations: 10-115 ms). Here the
young generations stay automatic and only full collections are paced: a
timer on the hub runs one about when CPython would have, no sooner than
`min_interval` s after the last, and preferably while no big JSON body is
being sent (`runtime` counts those), when the heap is small and the walk
short; after `max_delay` s it runs anyway. Garbage in cycles is still
collected, only later.

"When CPython would have": CPython waits until the objects promoted to the
oldest generation since its last full collection reach a quarter of those
it holds (so that a big heap, 10 000 parked long-polls, is not walked again
and again). Python does not show that count; each collection of the middle
generation promotes at most `threshold0 * threshold1` objects, so a full
collection is due once that many times the middle collections since the
last reach a quarter of the objects the last one left (`gc.get_objects(2)`,
counted after each full collection here): a bound, so never later than
CPython.

`release_in_slices` frees a big body a slice at a time (`runtime` runs it in
a greenlet of its own once the body is sent).

Installed by `runtime` the first time a gevent worker serves a request, when
`ServerConfig.gc_pacing` is on (the default); threaded workers keep CPython's
own collection (a thread that collects does not stop the others for long).
"""

from __future__ import annotations

import gc
import logging
import sys
import time
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)

#: Seconds between the hub's checks; least and most seconds between two full collections.
CHECK_INTERVAL = 0.25
MIN_INTERVAL = 10.0
MAX_DELAY = 60.0
#: The third threshold while paced: CPython never starts a full collection itself.
_NEVER = 2**31 - 1


class GCPacer:
    """Full collections from a hub timer (see the module docstring)."""

    def __init__(
        self,
        busy: Callable[[], bool],
        min_interval: float = MIN_INTERVAL,
        max_delay: float = MAX_DELAY,
        check_interval: float = CHECK_INTERVAL,
    ) -> None:
        self.busy = busy
        self.min_interval = min_interval
        self.max_delay = max_delay
        self.check_interval = check_interval
        self._last = time.monotonic()
        self._threshold = 10
        self._promoted_per_count = 700 * 10
        self._old_objects = 0
        self._timer: Any = None
        #: Full collections run, and the longest (s): what the pacing costs.
        self.collections = 0
        self.longest = 0.0

    def start(self, loop: Any) -> None:
        """Take full collections over from CPython, checking every `check_interval` s on `loop`."""
        young, middle, self._threshold = gc.get_threshold()
        self._promoted_per_count = max(1, young * middle)
        self._old_objects = len(gc.get_objects(2))
        gc.set_threshold(young, middle, _NEVER)
        self._timer = loop.timer(self.check_interval, self.check_interval)
        self._timer.start(self.tick)

    def stop(self) -> None:
        """Give full collections back to CPython."""
        if self._timer is not None:
            self._timer.stop()
            self._timer.close()
            self._timer = None
            young, middle, _ = gc.get_threshold()
            gc.set_threshold(young, middle, self._threshold)

    def tick(self) -> None:
        """Run a full collection if one is due and now is a good time (runs in the hub)."""
        count = gc.get_count()[2]
        if count <= self._threshold or not gc.isenabled():
            return
        if count * self._promoted_per_count < self._old_objects // 4:
            return  # the oldest generation has not grown by a quarter yet (at most)
        now = time.monotonic()
        waited = now - self._last
        if waited < self.min_interval or (waited < self.max_delay and self.busy()):
            return
        gc.collect(2)
        self._old_objects = len(gc.get_objects(2))
        done = time.monotonic()
        self._last = done
        self.collections += 1
        self.longest = max(self.longest, done - now)
        logger.debug("full garbage collection: %.1f ms", (done - now) * 1000)


#: Items deleted from a list between two looks at the clock in `release_in_slices`.
_RELEASE_STEP = 500


def release_in_slices(holder: list[Any], pause: Callable[[], object], interval: float) -> None:
    """Drop the object in `holder`, freeing its big lists and dicts a slice at a time.

    Freeing a tree of 100 000 dicts in one `decref` takes ~20 ms during which
    nothing else runs; here `pause()` runs whenever `interval` s went by. Only
    what nobody else references is taken apart (the reference count says so),
    down to the lists and dicts directly under the top: an object the
    application keeps (a cache) is never touched.

    This module is never compiled (setup.py's MYPYC_MODULES): the reference
    counts read here are the interpreter's, where an argument on the stack
    counts once; compiled code may borrow it and count one less.
    """
    obj = holder.pop()
    containers = [obj] if sys.getrefcount(obj) == 2 else []  # 2: `obj` and getrefcount's argument
    if isinstance(obj, dict):
        for key in list(obj) if containers else ():
            value = obj[key]
            if isinstance(value, (list, dict)) and sys.getrefcount(value) == 3:  # +1: the dict
                containers.append(value)
    del obj
    last = time.perf_counter()
    for container in reversed(containers):  # the children first, while the top still holds them
        if isinstance(container, dict):
            container = _pop_into_list(container)
        while container:
            del container[-_RELEASE_STEP:]
            if time.perf_counter() - last >= interval:
                pause()
                last = time.perf_counter()


def _pop_into_list(mapping: dict[Any, Any]) -> list[Any]:
    values = list(mapping.values())
    mapping.clear()
    return values


_installed: GCPacer | None = None


def install(loop: Any, busy: Callable[[], bool]) -> GCPacer:
    """Pace this process's full collections on `loop`, once (later calls return the same pacer)."""
    global _installed  # one collector per process, one pacer for it
    if _installed is None:
        _installed = GCPacer(busy)
        _installed.start(loop)
    return _installed
