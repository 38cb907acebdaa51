"""A tiny app around one `Notifier`, served by gunicorn in `test_notifier_served.py`.

GET /wait?key=K&since=N&timeout=MS parks (cancellable) until K moves past N;
POST /notify?key=K&position=N wakes; GET /waiters counts parked waits.
"""

from __future__ import annotations

from typing import Any

from synwsgi import (
    JsonResource,
    Notifier,
    RestServlet,
    Site,
    SynapseRequest,
    cancellable,
    parse_integer,
    parse_string,
)

notifier = Notifier()
positions: dict[str, int] = {}


class WaitServlet(RestServlet):
    PATTERNS = ["/wait"]

    @cancellable
    def on_GET(self, request: SynapseRequest) -> tuple[int, Any]:
        key = parse_string(request, "key", required=True)
        since = parse_integer(request, "since", required=True)
        timeout = parse_integer(request, "timeout", default=30_000)
        result = notifier.wait_for_events(
            {key}, since, timeout, lambda pos: positions.get(key, 0) if positions.get(key, 0) > since else 0
        )
        return 200, {"position": result}


class NotifyServlet(RestServlet):
    PATTERNS = ["/notify"]

    def on_POST(self, request: SynapseRequest) -> tuple[int, Any]:
        key = parse_string(request, "key", required=True)
        position = parse_integer(request, "position", required=True)
        positions[key] = max(positions.get(key, 0), position)
        notifier.notify([key], position)
        return 200, {}


class WaitersServlet(RestServlet):
    PATTERNS = ["/waiters"]

    def on_GET(self, request: SynapseRequest) -> tuple[int, Any]:
        return 200, {"waiters": notifier.count_waiters()}


resource = JsonResource()
for servlet in (WaitServlet(), NotifyServlet(), WaitersServlet()):
    servlet.register(resource)
app = Site({"/": resource})
