"""A small synwsgi app that builds a big JSON object cooperatively.

``/_demo/large`` in ``wsgi.py`` builds its 200 000 events in one go before the
toolkit sees them, which holds a gevent worker's hub for as long as that takes
(~0.8 s here) whatever the toolkit does. ``/_test/large?items=N`` returns the
same object (``wsgi.demo_event``) but builds it yielding to the hub every
500 items, so ``test_big_json.py`` can measure what the toolkit's own
encoding and sending cost the other greenlets of the worker.

``/_matrix/client/versions`` answers as in the showcase app (the probe).

``/_test/hub?reset=1`` reports (and resets) how long the gevent hub was held
at most, seen by a monitor greenlet that asks to wake every 5 ms: its
lateness in wall-clock time and in this process's CPU time. The CPU figure
does not grow when other processes compete for the cores, so it shows hub
blocking even on a busy machine.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from synwsgi import JsonResource, RestServlet, Site, SynapseRequest, parse_integer
from wsgi import demo_event


def served_by_gevent(request: SynapseRequest) -> bool:
    sock = request.environ.get("gunicorn.socket")
    return sock is not None and type(sock).__module__.startswith("gevent")


def _hub_yield(request: SynapseRequest) -> Callable[[], Any]:
    if served_by_gevent(request):
        import gevent

        return gevent.idle
    return lambda: None


class CooperativeLargeServlet(RestServlet):
    PATTERNS = ["/_test/large"]

    def on_GET(self, request: SynapseRequest) -> tuple[int, Any]:
        count = parse_integer(request, "items", default=100)
        pause = _hub_yield(request)
        items = []
        for i in range(count):
            items.append(demo_event(i))
            if i % 500 == 499:
                pause()
        return 200, {"items": items}


class HubMonitor:
    """A greenlet that notes how late it wakes up (started on first use)."""

    PERIOD = 0.005

    def __init__(self) -> None:
        self.started = False
        self.max_wall = 0.0
        self.max_cpu = 0.0

    def ensure_started(self) -> None:
        if not self.started:
            import gevent

            self.started = True
            gevent.spawn(self._run)

    def _run(self) -> None:
        import gevent

        while True:
            wall, cpu = time.perf_counter(), time.process_time()
            gevent.sleep(self.PERIOD)
            self.max_wall = max(self.max_wall, time.perf_counter() - wall - self.PERIOD)
            self.max_cpu = max(self.max_cpu, time.process_time() - cpu)

    def reset(self) -> None:
        self.max_wall = self.max_cpu = 0.0


HUB = HubMonitor()


class HubServlet(RestServlet):
    PATTERNS = ["/_test/hub"]

    def on_GET(self, request: SynapseRequest) -> tuple[int, Any]:
        if not served_by_gevent(request):
            return 200, {"gevent": False}
        HUB.ensure_started()
        result = {
            "gevent": True,
            "max_block_wall_ms": HUB.max_wall * 1000,
            "max_block_cpu_ms": HUB.max_cpu * 1000,
        }
        if request.query_args.get("reset"):
            HUB.reset()
        return 200, result


class VersionsServlet(RestServlet):
    PATTERNS = ["/_matrix/client/versions"]

    def on_GET(self, request: SynapseRequest) -> tuple[int, Any]:
        return 200, {"versions": ["r0.6.1", "v1.1", "v1.11", "v1.12"]}


def build_site() -> Site:
    client = JsonResource()
    VersionsServlet().register(client)
    test = JsonResource()
    CooperativeLargeServlet().register(test)
    HubServlet().register(test)
    return Site({"/_matrix/client": client, "/_test": test})


app = build_site()
