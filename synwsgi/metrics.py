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

from .accesslog import finished_cpu_usage
from .hooks import RequestHooks
from .resources import Resource, _unrecognized
from .responses import Response, return_json_error

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

    from .body import ResponseBody
    from .request import SynapseRequest

_TIME_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


# The method as a label value: any method is allowed on the wire, so the odd
# ones share the value "OTHER" rather than each making new series.
_KNOWN_METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"))


class _ServletMetrics:
    """The label children of one (method, servlet), bound once.

    `labels()` validates and locks on every call; a request instead finds
    this record with one dict lookup and touches the children directly.
    """

    __slots__ = ("by_code", "in_flight", "received", "size", "stime", "utime")

    def __init__(self, metrics: ServerMetrics, method: str, servlet: str) -> None:
        tag = metrics.tag
        self.received = metrics.requests_received.labels(method, servlet)
        self.in_flight = metrics.in_flight.labels(method, servlet)
        self.utime = metrics.ru_utime.labels(method, servlet, tag)
        self.stime = metrics.ru_stime.labels(method, servlet, tag)
        self.size = metrics.response_size.labels(method, servlet, tag)
        #: status code -> (responses child, response_time child)
        self.by_code: dict[int | None, tuple[Any, Any]] = {}


class ServerMetrics(RequestHooks):
    """Counts requests and responses, time, CPU and bytes by servlet, method and tag.

    Per request: one dict lookup finds the pre-bound children of its
    (servlet, method) and each metric is updated once. In prometheus'
    multiprocess mode every update is an mmap write, so nothing is updated
    that does not change (a request that used no CPU leaves the CPU
    counters alone).
    """

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
        #: servlet name -> method -> its bound children (nested: no key tuple per request)
        self._records: dict[str, dict[str, _ServletMetrics]] = {}

    def _record(self, method: str, servlet: str) -> _ServletMetrics:
        by_method = self._records.get(servlet)
        if by_method is None:
            by_method = self._records[servlet] = {}
        record = by_method.get(method)
        if record is None:
            record = by_method[method] = _ServletMetrics(self, method, servlet)
        return record

    def _code_children(
        self, record: _ServletMetrics, method: str, servlet: str, code: int | None
    ) -> tuple[Any, Any]:
        children = record.by_code.get(code)
        if children is None:
            label = str(code)
            children = record.by_code[code] = (
                self.responses.labels(method, label),
                self.response_time.labels(method, servlet, self.tag, label),
            )
        return children

    def handler_started(self, request: SynapseRequest) -> None:
        assert request.hook_state is not None
        method = request.method
        if method not in _KNOWN_METHODS:
            method = "OTHER"
        servlet = request.servlet_name
        by_method = self._records.get(servlet)
        record = by_method.get(method) if by_method is not None else None
        if record is None:
            record = self._record(method, servlet)
        # in flight: request_finished decrements this record's gauge
        request.hook_state[self] = record
        record.received.inc()
        record.in_flight.inc()

    def request_finished(self, request: SynapseRequest, body: ResponseBody) -> None:
        method = request.method
        if method not in _KNOWN_METHODS:
            method = "OTHER"
        servlet = request.servlet_name
        state = request.hook_state
        started: _ServletMetrics | None = state.pop(self, None) if state is not None else None
        if started is not None:
            started.in_flight.dec()
        by_method = self._records.get(servlet)
        record = by_method.get(method) if by_method is not None else None
        if record is None:
            record = self._record(method, servlet)
        if started is None:
            record.received.inc()  # no handler ran (an unknown path, say): counted now
        code = request.response_code
        children = record.by_code.get(code)
        if children is None:
            children = self._code_children(record, method, servlet, code)
        children[0].inc()
        elapsed = time.perf_counter() - request.start_time
        children[1].observe(elapsed if elapsed > 0.0 else 0.0)
        user, system = finished_cpu_usage(request)
        if user > 0.0:
            record.utime.inc(user)
        if system > 0.0:
            record.stime.inc(system)
        sent = body.bytes_sent
        if sent:
            record.size.inc(sent)


class MetricsResource(Resource):
    """Serves the Prometheus text format; all workers' metrics in multiprocess mode."""

    isLeaf = False

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.registry = registry

    def render(self, request: SynapseRequest) -> WSGIApplication:
        request.servlet_name = type(self).__name__
        if request.method not in ("GET", "HEAD"):
            return return_json_error(request, _unrecognized(request, ["GET", "HEAD"]))
        registry = self.registry
        if "PROMETHEUS_MULTIPROC_DIR" in os.environ and registry is REGISTRY:
            registry = CollectorRegistry()
            prometheus_multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        body = generate_latest(registry)
        return Response(
            200, [("Content-Type", CONTENT_TYPE_LATEST), ("Content-Length", str(len(body)))], body
        )
