"""synwsgi implementation of the benchmark routes.

`app` is configured like the peers (no logging or metrics), so the rows
compare the same work. `app_observed` adds what production would run: the
access log hook, Prometheus metrics (in a private registry) and tracing.

For the gevent hub stall group (`bench/hubstall.py`) every app also serves
two synwsgi-only routes: `/_bench/large-cached?items=N`, the event list of
`/_demo/large` built once per N (building 75k dicts would itself block the
hub: that is the handler's cost, not the toolkit's), and `/_bench/stall`, a
probe of the worker's hub (see `HubTicker`). `app_oneshot` is `app` with
incremental JSON encoding switched off, the baseline of that group.
"""

from __future__ import annotations

import functools
import logging.config
import os
import sys
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry

from bench.peers.common import (
    LARGE_PATH,
    STREAM_HEADERS,
    STREAM_PATH,
    build_event,
    build_events,
    query_int,
    stream_chunks,
    stream_params,
)
from synwsgi import JsonResource, Response, RestServlet, Site, SynapseRequest, cooperate
from synwsgi.config import ServerConfig
from synwsgi.observability.accesslog import AccessLogger
from synwsgi.observability.logcontext import logging_config
from synwsgi.observability.metrics import ServerMetrics
from synwsgi.observability.tracing import tracing_hooks


class StateServlet(RestServlet):
    PATTERNS = ["/_matrix/client/v3/rooms/<room_id>/state/<event_type>"]

    def on_GET(self, request: SynapseRequest, room_id: str, event_type: str) -> tuple[int, Any]:
        return 200, {"event_type": event_type, "room_id": room_id, "state_key": ""}


class StreamServlet(RestServlet):
    PATTERNS = [STREAM_PATH]

    def on_GET(self, request: SynapseRequest) -> Response:
        total, chunk = stream_params(request.environ.get("QUERY_STRING", ""))
        body: Iterator[bytes] = stream_chunks(total, chunk)
        return Response(200, list(STREAM_HEADERS), body)


class LargeServlet(RestServlet):
    PATTERNS = [LARGE_PATH]

    def on_GET(self, request: SynapseRequest) -> tuple[int, Any]:
        return 200, build_events(query_int(request.environ.get("QUERY_STRING", ""), "items", 0))


LARGE_CACHED_PATH = "/_bench/large-cached"
STALL_PATH = "/_bench/stall"

#: the event lists served by `/_bench/large-cached`, one per size (never mutated)
cached_events = functools.lru_cache(maxsize=4)(build_events)


class LargeCachedServlet(RestServlet):
    PATTERNS = [LARGE_CACHED_PATH]

    def on_GET(self, request: SynapseRequest) -> tuple[int, Any]:
        return 200, cached_events(query_int(request.environ.get("QUERY_STRING", ""), "items", 0))


LARGE_BUILT_PATH = "/_bench/large-built"


class LargeBuiltServlet(RestServlet):
    """The event list of `/_bench/large-cached`, built for each request as a real `/sync`
    builds its body, letting other requests run every 1 000 events as the showcase's
    `/_demo/large` does (`synwsgi.cooperate()`)."""

    PATTERNS = [LARGE_BUILT_PATH]

    def on_GET(self, request: SynapseRequest) -> tuple[int, Any]:
        count = query_int(request.environ.get("QUERY_STRING", ""), "items", 0)
        items: list[dict[str, Any]] = []
        for start in range(0, count, 1000):
            items.extend(build_event(i) for i in range(start, min(count, start + 1000)))
            cooperate()
        return 200, {"items": items}


class HubTicker:
    """A greenlet that sleeps `TICK_S` in a loop and records the worst lateness.

    The lateness of a wake-up is the wall time since the previous one minus
    `TICK_S`: how long the hub could not run this greenlet, i.e. the longest
    stall of every other greenlet of the worker too. On a busy machine that
    includes time the OS gave the CPU to another process, so the CPU time this
    thread (the hub's) used between two wake-ups is recorded as well: the
    part of a stall spent running Python in this worker.
    """

    TICK_S = 0.001

    def __init__(self) -> None:
        self.max_gap_s = 0.0
        self.max_cpu_gap_s = 0.0
        self.ticks = 0
        self.greenlet: Any = None

    def start(self) -> None:
        import gevent

        if self.greenlet is None or self.greenlet.dead:
            self.greenlet = gevent.spawn(self._run)

    def stop(self) -> None:
        if self.greenlet is not None:
            self.greenlet.kill(block=False)
            self.greenlet = None

    def read_and_reset(self) -> dict[str, Any]:
        result = {
            "max_gap_ms": self.max_gap_s * 1e3,
            "max_cpu_gap_ms": self.max_cpu_gap_s * 1e3,
            "ticks": self.ticks,
        }
        self.max_gap_s = self.max_cpu_gap_s = 0.0
        self.ticks = 0
        return result

    def _run(self) -> None:
        import gevent

        last, last_cpu = time.perf_counter(), time.thread_time()
        while True:
            gevent.sleep(self.TICK_S)
            now, now_cpu = time.perf_counter(), time.thread_time()
            self.max_gap_s = max(self.max_gap_s, now - last - self.TICK_S)
            self.max_cpu_gap_s = max(self.max_cpu_gap_s, now_cpu - last_cpu)
            self.ticks += 1
            last, last_cpu = now, now_cpu


def under_gevent() -> bool:
    """Whether gevent has patched this process (as gunicorn's gevent worker does)."""
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and bool(monkey.is_module_patched("socket"))


class StallServlet(RestServlet):
    """`GET /_bench/stall[?stop=1]`: the worst hub stall since the last call.

    Starts the ticker if it is not running (so the first answer is 0 ticks),
    answers `{"max_gap_ms": .., "max_cpu_gap_ms": .., "ticks": ..}` and resets
    them; `stop=1` also stops the ticker, so that an idle worker costs no CPU
    between measurements. Without gevent the gaps are null.
    """

    PATTERNS = [STALL_PATH]
    ticker = HubTicker()

    def on_GET(self, request: SynapseRequest) -> tuple[int, Any]:
        if not under_gevent():
            return 200, {"max_gap_ms": None, "max_cpu_gap_ms": None, "ticks": 0}
        result = self.ticker.read_and_reset()
        if query_int(request.environ.get("QUERY_STRING", ""), "stop", 0):
            self.ticker.stop()
        else:
            self.ticker.start()
        return 200, result


def create_app(
    *, observed: bool = False, production: bool = False, config: ServerConfig | None = None
) -> Site:
    resource = JsonResource()
    servlets = (
        StateServlet(),
        StreamServlet(),
        LargeServlet(),
        LargeCachedServlet(),
        LargeBuiltServlet(),
        StallServlet(),
    )
    for servlet in servlets:
        servlet.register(resource)
    hooks: list[Any] = []
    if observed:
        hooks = [AccessLogger(), ServerMetrics(CollectorRegistry()), *tracing_hooks()]
    elif production:
        hooks = [AccessLogger(), ServerMetrics()]
    return Site({"/": resource}, hooks=hooks, config=config)


app = create_app()
app_observed = create_app(observed=True)
#: `app` encoding every JSON response in one go (the hub stall group's baseline)
app_oneshot = create_app(config=ServerConfig(large_json_items=10**12))
#: `app` without `ServerConfig.gc_pacing` (CPython's own collector, big bodies freed in one go):
#: the fairness group's evidence for the pacing
app_unpaced = create_app(config=ServerConfig(gc_pacing=False))


def create_production_app() -> Site:
    """`app` with the hooks every production deployment turns on: the access
    log and Prometheus metrics in the default registry (multiprocess mode when
    `PROMETHEUS_MULTIPROC_DIR` is set before prometheus_client is imported,
    as the repo's gunicorn.conf.py does). Where the access lines go is the
    logging configuration's business (`bench/hooks.py` writes them to a file)."""
    return create_app(production=True)


_production: list[Site] = []


def __getattr__(name: str) -> Any:
    """`app_production`, built on first use: its metrics go to the default
    registry, which must happen once per process and only where the
    process chose its prometheus mode (a child, or a gunicorn worker)."""
    if name != "app_production":
        raise AttributeError(name)
    if not _production:
        access_log = os.environ.get("SYNWSGI_BENCH_ACCESS_LOG")
        if access_log:  # under gunicorn (bench/load.py): the lines go to this file
            configure_access_log(access_log)
        _production.append(create_production_app())
    return _production[0]


def configure_access_log(path: str) -> None:
    """Logging as the repo's gunicorn.conf.py sets it (`logging_config`), the
    access lines written to the file at `path` instead of stderr."""
    config = logging_config("INFO")
    config["handlers"]["access"]["stream"] = open(path, "a", encoding="utf-8")  # type: ignore[index]  # noqa: SIM115 - the handler's for the process's life
    logging.config.dictConfig(config)
