"""Prometheus metrics per servlet, named and labelled as Synapse's are.

Label values come from servlet names, never from paths, so IDs in URLs cannot
explode the series count (unknown paths all count as
`unrecognised_request_handler`). Under gunicorn with several workers, set
`PROMETHEUS_MULTIPROC_DIR` (the repo's gunicorn.conf.py does) and
`MetricsResource` adds up every worker's numbers.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
from bisect import bisect_left
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
from prometheus_client import values as prometheus_values

from .hooks import RequestHooks
from .policy import Kind
from .resources import Handler, Resource, method_not_allowed
from .responses import Response

if TYPE_CHECKING:
    from .body import ResponseBody
    from .request import SynapseRequest

_TIME_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


# The method as a label value: any method is allowed on the wire, so the odd
# ones share the value "OTHER" rather than each making new series.
_KNOWN_METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"))


class _Sink:
    """Batches what requests add, for prometheus' multiprocess mode.

    There each update is an mmap'ed file write under a process-wide lock,
    so requests add their numbers to plain fields of the label records
    (under `lock`) and `flush` writes them at most `interval` seconds
    later: from a timer armed by the first update of a batch, and at
    interpreter exit (`atexit`, which gunicorn workers run when they stop).
    What `/metrics` shows is then at most `interval` old for those series,
    and the in-flight gauge is this process's count as of the last write (a
    request that starts and ends within one batch writes nothing there);
    `requests_received` is always written at once.
    """

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.lock = threading.Lock()
        #: records and code children with something not yet written
        self.dirty_records: set[_ServletMetrics] = set()
        self.dirty_codes: set[_CodeChildren] = set()
        #: whether a flush is scheduled (set under `lock` by whoever schedules it)
        self.armed = False
        atexit.register(self.flush)

    def arm(self) -> None:
        timer = threading.Timer(self.interval, self.flush)
        timer.daemon = True
        timer.start()

    def flush(self) -> None:
        """Write every pending update now."""
        with self.lock:
            codes = [code.take() for code in self.dirty_codes]
            records = [record.take() for record in self.dirty_records]
            self.dirty_codes = set()
            self.dirty_records = set()
            self.armed = False
        for code, count, seconds, in_bucket in codes:
            code.total.inc(count)
            code.time_sum.inc(seconds)
            for value, n in zip(code.buckets, in_bucket, strict=True):
                if n:
                    value.inc(n)
        for record, user, system, size, running in records:
            if user:
                record.utime.inc(user)
            if system:
                record.stime.inc(system)
            if size:
                record.size.inc(size)
            if running is not None:
                record.in_flight.set(running)


def _multiprocess_values() -> bool:
    """Whether prometheus_client writes values to mmap'ed files (chosen at its import)."""
    return bool(getattr(prometheus_values.ValueClass, "_multiprocess", False))


class _CodeChildren:
    """The children of one (method, servlet, status code), and what is not yet written to them."""

    __slots__ = (
        "bounds",
        "buckets",
        "count",
        "in_bucket",
        "response_time",
        "responses",
        "seconds",
        "time_sum",
        "total",
    )

    def __init__(self, responses: Any, response_time: Any) -> None:
        self.responses = responses
        self.response_time = response_time
        # For batched updates: the values behind them (prometheus_client's
        # Counter keeps one in `_value`, a Histogram `_sum` and one per
        # bucket, not cumulative, in `_buckets`, whose bounds are
        # `_upper_bounds`, +Inf last).
        self.total = responses._value
        self.time_sum = response_time._sum
        self.buckets = response_time._buckets
        self.bounds = response_time._upper_bounds
        self.count = 0
        self.seconds = 0.0
        self.in_bucket = [0] * len(self.bounds)

    def observe(self, seconds: float) -> None:
        """One response (caller holds the sink's lock)."""
        self.count += 1
        self.seconds += seconds
        self.in_bucket[bisect_left(self.bounds, seconds)] += 1

    def take(self) -> tuple[_CodeChildren, int, float, list[int]]:
        taken = (self, self.count, self.seconds, self.in_bucket)
        self.count, self.seconds, self.in_bucket = 0, 0.0, [0] * len(self.bounds)
        return taken


class _ServletMetrics:
    """The label children of one (method, servlet), bound once.

    `labels()` validates and locks on every call; a request instead finds
    this record with one dict lookup and touches the children directly.
    """

    __slots__ = (
        "by_code",
        "in_flight",
        "received",
        "received_value",
        "running",
        "running_written",
        "size",
        "size_bytes",
        "stime",
        "stime_s",
        "utime",
        "utime_s",
    )

    def __init__(self, metrics: ServerMetrics, method: str, servlet: str) -> None:
        tag = metrics.tag
        self.received = metrics.requests_received.labels(method, servlet)
        self.received_value = self.received._value  # written without Counter.inc's checks
        self.in_flight = metrics.in_flight.labels(method, servlet)
        self.utime = metrics.ru_utime.labels(method, servlet, tag)
        self.stime = metrics.ru_stime.labels(method, servlet, tag)
        self.size = metrics.response_size.labels(method, servlet, tag)
        self.by_code: dict[int | None, _CodeChildren] = {}
        # Batched (multiprocess mode): not yet written, and this process's
        # in-flight count against the one last written.
        self.utime_s = self.stime_s = 0.0
        self.size_bytes = 0
        self.running = self.running_written = 0

    def take(self) -> tuple[_ServletMetrics, float, float, int, int | None]:
        running = self.running if self.running != self.running_written else None
        taken = (self, self.utime_s, self.stime_s, self.size_bytes, running)
        self.utime_s = self.stime_s = 0.0
        self.size_bytes = 0
        self.running_written = self.running
        return taken


class ServerMetrics(RequestHooks):
    """Counts requests and responses, time, CPU and bytes by servlet, method and tag.

    Per request: one dict lookup finds the pre-bound children of its
    (servlet, method) and each metric is updated once; nothing is written
    that does not change (a request that used no CPU leaves the CPU
    counters alone). In prometheus' multiprocess mode, where every update
    is a file write, what a finished request adds is batched (see `_Sink`;
    `batch_interval` seconds, 0 to write at once).
    """

    def __init__(
        self,
        registry: CollectorRegistry = REGISTRY,
        tag: str = "synwsgi",
        prefix: str = "synwsgi_http_server",
        batch_interval: float = 0.25,
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
        self._sink = _Sink(batch_interval) if batch_interval > 0 and _multiprocess_values() else None

    def flush(self) -> None:
        """Write what is batched now (nothing is, outside multiprocess mode)."""
        if self._sink is not None:
            self._sink.flush()

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
    ) -> _CodeChildren:
        children = record.by_code.get(code)
        if children is None:
            label = str(code)
            children = record.by_code[code] = _CodeChildren(
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
        sink = self._sink
        if sink is None:
            record.received.inc()
            record.in_flight.inc()
            return
        record.received_value.inc(1.0)
        with sink.lock:
            record.running += 1
            sink.dirty_records.add(record)
            arm = not sink.armed
            sink.armed = True
        if arm:
            sink.arm()

    def request_finished(self, request: SynapseRequest, body: ResponseBody) -> None:
        state = request.hook_state
        started: _ServletMetrics | None = state.pop(self, None) if state is not None else None
        method = request.method
        if method not in _KNOWN_METHODS:
            method = "OTHER"
        servlet = request.servlet_name
        if started is not None:
            record = started  # its servlet was final when the handler started
        else:
            by_method = self._records.get(servlet)
            found = by_method.get(method) if by_method is not None else None
            record = found if found is not None else self._record(method, servlet)
        code = request.response_code
        children = record.by_code.get(code)
        if children is None:
            children = self._code_children(record, method, servlet, code)
        elapsed = time.perf_counter() - request.start_time
        if elapsed < 0.0:
            elapsed = 0.0
        user, system = request.cpu_usage()
        sent = body.bytes_sent
        sink = self._sink
        if sink is None:
            if started is not None:
                record.in_flight.dec()
            else:
                record.received.inc()  # no handler ran (an unknown path, say): counted now
            children.responses.inc()
            children.response_time.observe(elapsed)
            if user > 0.0:
                record.utime.inc(user)
            if system > 0.0:
                record.stime.inc(system)
            if sent:
                record.size.inc(sent)
            return
        if started is None:
            record.received_value.inc(1.0)
        with sink.lock:
            if started is not None:
                record.running -= 1
            children.observe(elapsed)
            if user > 0.0:
                record.utime_s += user
            if system > 0.0:
                record.stime_s += system
            record.size_bytes += sent
            sink.dirty_codes.add(children)
            sink.dirty_records.add(record)
            arm = not sink.armed
            sink.armed = True
        if arm:
            sink.arm()


class MetricsResource(Resource):
    """Serves the Prometheus text format; all workers' metrics in multiprocess mode."""

    isLeaf = False
    result_kind = Kind.METRICS

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.registry = registry

    def get_handler(self, request: SynapseRequest) -> Handler:
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
