"""The app that docs/testing.rst tests: a factory, so every test gets its own."""

from __future__ import annotations

import threading
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry

from synwsgi import (
    CancelledError,
    JsonResource,
    NotFoundError,
    RestServlet,
    Site,
    SynapseRequest,
    cancellable,
    parse_integer,
    sleep,
)
from synwsgi.observability.metrics import MetricsResource, ServerMetrics


class Counts:
    """How the slow requests ended, per process (a test reads it from /_test/counts)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.cancelled = self.completed = 0


class RoomServlet(RestServlet):
    PATTERNS = ["/_matrix/client/v3/rooms/<room_id>"]

    def on_GET(self, request: SynapseRequest, room_id: str) -> tuple[int, Any]:
        if room_id != "!tea:example.org":
            raise NotFoundError("No such room")
        return 200, {"room_id": room_id, "name": "Tea"}


class SlowServlet(RestServlet):
    PATTERNS = ["/_test/slow"]

    def __init__(self, counts: Counts) -> None:
        super().__init__()
        self.counts = counts

    @cancellable
    def on_GET(self, request: SynapseRequest) -> tuple[int, Any]:
        try:
            sleep(parse_integer(request, "seconds", default=10))
        except CancelledError:
            with self.counts.lock:
                self.counts.cancelled += 1
            raise
        with self.counts.lock:
            self.counts.completed += 1
        return 200, {}


class CountsServlet(RestServlet):
    PATTERNS = ["/_test/counts"]

    def __init__(self, counts: Counts) -> None:
        super().__init__()
        self.counts = counts

    def on_GET(self, request: SynapseRequest) -> tuple[int, Any]:
        return 200, {"cancelled": self.counts.cancelled, "completed": self.counts.completed}


def create_app(registry: CollectorRegistry = REGISTRY) -> Site:
    """A new application. Tests pass a fresh `CollectorRegistry`, so that each test counts
    its own requests (two `ServerMetrics` on one registry share, and add up, its metrics)."""
    counts = Counts()
    client = JsonResource()
    RoomServlet().register(client)
    tests = JsonResource()
    SlowServlet(counts).register(tests)
    CountsServlet(counts).register(tests)
    return Site(
        {"/_matrix/client": client, "/_test": tests, "/metrics": MetricsResource(registry)},
        hooks=[ServerMetrics(registry)],
    )
