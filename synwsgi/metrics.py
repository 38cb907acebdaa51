"""Prometheus metrics per servlet, named and labelled as Synapse's are.

Label values come from servlet names, never from paths, so IDs in URLs cannot
explode the series count (unknown paths all count as
`unrecognised_request_handler`). Under gunicorn with several workers, set
`PROMETHEUS_MULTIPROC_DIR` (the repo's gunicorn.conf.py does) and
`MetricsResource` adds up every worker's numbers.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as prometheus_multiprocess

from .hooks import RequestHooks
from .policy import Kind
from .resources import Handler, Resource, method_not_allowed
from .responses import Response

if TYPE_CHECKING:
    from .body import ResponseBody
    from .request import SynapseRequest

_TIME_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


_KNOWN_METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"))


def _method_label(method: str) -> str:
    """The method as a label value: any method is allowed on the wire, so the
    odd ones share one value rather than each making new series."""
    return method if method in _KNOWN_METHODS else "OTHER"


class ServerMetrics(RequestHooks):
    """Counts requests and responses, time, CPU and bytes by servlet, method and tag."""

    def __init__(
        self,
        registry: CollectorRegistry = REGISTRY,
        tag: str = "synwsgi",
        prefix: str = "synwsgi_http_server",
    ) -> None:
        self.tag = tag
        by_servlet = ["method", "servlet"]
        by_tag = ["method", "servlet", "tag"]

        def counter(name: str, doc: str, labels: list[str]) -> Counter:
            return Counter(f"{prefix}_{name}", doc, labels, registry=registry)

        self.requests_received = counter("requests_received", "Requests received", by_servlet)
        self.responses = counter("responses", "Responses sent", ["method", "code"])
        self.in_flight = Gauge(
            f"{prefix}_in_flight_requests",
            "Requests whose handler is running",
            by_servlet,
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.response_time = Histogram(
            f"{prefix}_response_time_seconds",
            "Time from request to closed response",
            [*by_tag, "code"],
            buckets=_TIME_BUCKETS,
            registry=registry,
        )
        self.ru_utime = counter("response_ru_utime_seconds", "User CPU of handling", by_tag)
        self.ru_stime = counter("response_ru_stime_seconds", "System CPU of handling", by_tag)
        self.response_size = counter("response_size_bytes", "Response body bytes", by_tag)
        # `labels()` validates and locks on every call; the children are
        # cached here, keyed by their label values.
        self._children: dict[tuple[Any, ...], Any] = {}

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def handler_started(self, request: SynapseRequest) -> None:
        assert request.hook_state is not None
        request.hook_state[self] = True  # in flight: request_finished decrements
        method = _method_label(request.method)
        self._child(self.requests_received, method, request.servlet_name).inc()
        self._child(self.in_flight, method, request.servlet_name).inc()

    def request_finished(self, request: SynapseRequest, body: ResponseBody) -> None:
        method, servlet, tag = _method_label(request.method), request.servlet_name, self.tag
        if request.hook_state is not None and request.hook_state.pop(self, False):
            self._child(self.in_flight, method, servlet).dec()
        else:
            self._child(self.requests_received, method, servlet).inc()
        code = str(request.response_code)
        self._child(self.responses, method, code).inc()
        self._child(self.response_time, method, servlet, tag, code).observe(
            max(0.0, time.perf_counter() - request.start_time)
        )
        user, system = request.cpu_usage()
        self._child(self.ru_utime, method, servlet, tag).inc(max(0.0, user))
        self._child(self.ru_stime, method, servlet, tag).inc(max(0.0, system))
        self._child(self.response_size, method, servlet, tag).inc(body.bytes_sent)


class MetricsResource(Resource):
    """Serves the Prometheus text format; all workers' metrics in multiprocess mode."""

    isLeaf = False
    result_kind = Kind.METRICS

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.registry = registry

    def get_handler(self, request: SynapseRequest) -> Handler:
        request.servlet_name = type(self).__name__
        if request.method not in ("GET", "HEAD"):
            raise method_not_allowed(request, ["GET"])
        return self._render, {}

    def _render(self, request: SynapseRequest) -> Response:
        registry = self.registry
        if "PROMETHEUS_MULTIPROC_DIR" in os.environ and registry is REGISTRY:
            registry = CollectorRegistry()
            prometheus_multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        body = generate_latest(registry)
        headers = [("Content-Type", CONTENT_TYPE_LATEST), ("Content-Length", str(len(body)))]
        return Response(200, headers, body, Kind.METRICS)
