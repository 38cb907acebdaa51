"""`bench.peers.synwsgi_app:app` whose big JSON bodies yield to the gevent hub
with `gevent.sleep(0)` instead of synwsgi's `gevent.idle()`: the rejected
alternative that `bench/fairness.py` measures next to the default."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator

import synwsgi.resources
from bench.peers.synwsgi_app import create_app

INTERVAL_S = 0.002


def cooperative(pieces: Iterable[bytes], interval: float = INTERVAL_S) -> Iterator[bytes]:
    import gevent

    last = time.perf_counter()
    for piece in pieces:
        yield piece
        now = time.perf_counter()
        if now - last >= interval:
            gevent.sleep(0)
            last = time.perf_counter()


synwsgi.resources.cooperative = cooperative  # type: ignore[attr-defined]
app = create_app()
