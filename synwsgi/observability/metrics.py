"""Prometheus metrics per servlet, named and labelled as Synapse's are.

The names, label sets and histogram buckets are those of Synapse's
`synapse/http/request_metrics.py` (prefix `synapse_http_server` by default,
so Synapse's Grafana dashboard works unchanged; `prefix=` changes it),
except the database ones (`..._db_txn_count`, `..._db_txn_duration_seconds`,
`..._db_sched_duration_seconds`): synwsgi has no database layer to measure.
Label values come from servlet names, never from paths, so IDs in URLs cannot
explode the series count (unknown paths all count as
`unrecognised_request_handler`); `tag` is the listener's
`ServerConfig.site_tag` and `server_name` the one given to `ServerMetrics`.

Under gunicorn with several workers, set `PROMETHEUS_MULTIPROC_DIR` (the
repo's gunicorn.conf.py does) and serve all workers' numbers with
`MetricsResource` or `synwsgi.metrics_server` on a port of their own.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
import weakref
from _thread import RLock as _CLock
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
    start_wsgi_server,
)
from prometheus_client import multiprocess as prometheus_multiprocess
from prometheus_client import values as prometheus_values

from ..policy import Kind
from ..resources import Handler, Resource, method_not_allowed
from ..responses import Response
from .hooks import RequestHooks

if TYPE_CHECKING:
    from ..body import ResponseBody
    from ..request import SynapseRequest

#: Synapse's metric names start with this (its Grafana dashboard queries them)
SYNAPSE_PREFIX = "synapse_http_server"
#: Synapse's `response_time_seconds` uses prometheus_client's default buckets
TIME_BUCKETS = Histogram.DEFAULT_BUCKETS

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
    request that starts and ends within one batch writes nothing there).
    """

    def __init__(self, interval: float) -> None:
        self.interval = interval
        # A C lock even under gevent (which patches `threading.Lock` into a
        # Python-level one, ~1 us a pair): what it guards never switches
        # greenlets, and reentrant per OS thread, greenlets never wait on it.
        self.lock = _CLock()
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
        for record, received, responses, user, system, size, running in records:
            if received:
                record.received.inc(received)
            if responses:
                record.count.inc(responses)
            if user:
                record.utime.inc(user)
                record.in_flight_utime.inc(user)
            if system:
                record.stime.inc(system)
                record.in_flight_stime.inc(system)
            if size:
                record.size.inc(size)
            if running:
                record.in_flight.inc(running)


def _multiprocess_values() -> bool:
    """Whether prometheus_client writes values to mmap'ed files (chosen at its import)."""
    return bool(getattr(prometheus_values.ValueClass, "_multiprocess", False))


class _Collectors:
    """The metrics of one prefix in one registry: made once, shared by every
    `ServerMetrics` of that registry and prefix (an app factory called twice
    in one process, as tests do, must not register the names twice)."""

    def __init__(self, registry: CollectorRegistry, prefix: str) -> None:
        by_servlet = ["method", "servlet", "server_name"]
        by_tag = ["method", "servlet", "tag", "server_name"]

        def counter(name: str, labels: list[str]) -> Counter:
            return Counter(f"{prefix}_{name}", "", labels, registry=registry)

        self.requests_received = counter("requests_received", by_servlet)
        self.responses = counter("responses", ["method", "code", "server_name"])
        self.response_count = counter("response_count", by_tag)
        self.response_time = Histogram(
            f"{prefix}_response_time_seconds",
            "sec",
            ["method", "servlet", "tag", "code", "server_name"],
            buckets=TIME_BUCKETS,
            registry=registry,
        )
        self.ru_utime = counter("response_ru_utime_seconds", by_tag)
        self.ru_stime = counter("response_ru_stime_seconds", by_tag)
        self.response_size = counter("response_size", by_tag)
        self.in_flight = Gauge(
            f"{prefix}_in_flight_requests_count",
            "",
            by_servlet,
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.in_flight_utime = counter("in_flight_requests_ru_utime_seconds", by_servlet)
        self.in_flight_stime = counter("in_flight_requests_ru_stime_seconds", by_servlet)


_collectors: weakref.WeakKeyDictionary[CollectorRegistry, dict[str, _Collectors]] = (
    weakref.WeakKeyDictionary()
)
_collectors_lock = threading.Lock()


def _collectors_for(registry: CollectorRegistry, prefix: str) -> _Collectors:
    with _collectors_lock:
        by_prefix = _collectors.setdefault(registry, {})
        found = by_prefix.get(prefix)
        if found is None:
            found = by_prefix[prefix] = _Collectors(registry, prefix)
        return found


class _CodeChildren:
    """The children of one (method, servlet, tag, status code), and what is not yet written to them."""

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
    """The label children of one (method, servlet, tag), bound once.

    `labels()` validates and locks on every call; a request instead finds
    this record with one dict lookup and touches the children directly
    (or, batched, adds to its plain fields).
    """

    __slots__ = (
        "by_code",
        "count",
        "in_flight",
        "in_flight_stime",
        "in_flight_utime",
        "n_received",
        "n_responses",
        "received",
        "running",
        "size",
        "size_bytes",
        "stime",
        "stime_s",
        "tag",
        "utime",
        "utime_s",
    )

    def __init__(self, metrics: ServerMetrics, method: str, servlet: str, tag: str) -> None:
        c = metrics.collectors
        server = metrics.server_name
        self.tag = tag
        self.received = c.requests_received.labels(method, servlet, server)
        self.count = c.response_count.labels(method, servlet, tag, server)
        self.in_flight = c.in_flight.labels(method, servlet, server)
        self.in_flight_utime = c.in_flight_utime.labels(method, servlet, server)
        self.in_flight_stime = c.in_flight_stime.labels(method, servlet, server)
        self.utime = c.ru_utime.labels(method, servlet, tag, server)
        self.stime = c.ru_stime.labels(method, servlet, tag, server)
        self.size = c.response_size.labels(method, servlet, tag, server)
        self.by_code: dict[int | None, _CodeChildren] = {}
        # Batched (multiprocess mode): not yet written. `running` is the
        # change of this process's in-flight count since the last write.
        self.n_received = self.n_responses = 0
        self.utime_s = self.stime_s = 0.0
        self.size_bytes = 0
        self.running = 0

    def take(self) -> tuple[_ServletMetrics, int, int, float, float, int, int]:
        taken = (
            self,
            self.n_received,
            self.n_responses,
            self.utime_s,
            self.stime_s,
            self.size_bytes,
            self.running,
        )
        self.n_received = self.n_responses = 0
        self.utime_s = self.stime_s = 0.0
        self.size_bytes = 0
        self.running = 0
        return taken


class ServerMetrics(RequestHooks):
    """Counts requests and responses, time, CPU and bytes by servlet, method and tag.

    Per request: one dict lookup finds the pre-bound children of its
    (servlet, method, tag) and each metric is updated once; nothing is
    written that does not change (a request that used no CPU leaves the CPU
    counters alone). In prometheus' multiprocess mode, where every update
    is a file write, what a request adds is batched (see `_Sink`;
    `batch_interval` seconds, 0 to write at once).

    `tag` None (the default) labels each request with its
    `ServerConfig.site_tag`; `server_name` fills Synapse's `server_name`
    label (its homeserver's name). Several `ServerMetrics` of one registry
    and prefix share the metrics (their numbers add up): an app factory can
    run twice in one process. Give each its own `CollectorRegistry` to keep
    them apart.
    """

    def __init__(
        self,
        registry: CollectorRegistry = REGISTRY,
        tag: str | None = None,
        prefix: str = SYNAPSE_PREFIX,
        batch_interval: float = 0.25,
        server_name: str = "",
    ) -> None:
        self.tag = tag
        self.server_name = server_name
        self.collectors = _collectors_for(registry, prefix)
        #: (servlet, method, tag) -> its bound children
        self._records: dict[tuple[str, str, str], _ServletMetrics] = {}
        self._sink = _Sink(batch_interval) if batch_interval > 0 and _multiprocess_values() else None

    def flush(self) -> None:
        """Write what is batched now (nothing is, outside multiprocess mode)."""
        if self._sink is not None:
            self._sink.flush()

    def _record(self, method: str, servlet: str, tag: str) -> _ServletMetrics:
        key = (servlet, method, tag)
        record = self._records.get(key)
        if record is None:
            record = self._records[key] = _ServletMetrics(self, method, servlet, tag)
        return record

    def _code_children(
        self, record: _ServletMetrics, method: str, servlet: str, code: int | None
    ) -> _CodeChildren:
        children = record.by_code.get(code)
        if children is None:
            label = str(code)
            c = self.collectors
            children = record.by_code[code] = _CodeChildren(
                c.responses.labels(method, label, self.server_name),
                c.response_time.labels(method, servlet, record.tag, label, self.server_name),
            )
        return children

    def _find(self, request: SynapseRequest) -> _ServletMetrics:
        method = request.method
        if method not in _KNOWN_METHODS:
            method = "OTHER"
        servlet = request.servlet_name
        tag = self.tag or request.config.site_tag
        record = self._records.get((servlet, method, tag))
        return record if record is not None else self._record(method, servlet, tag)

    def handler_started(self, request: SynapseRequest) -> None:
        record = self._find(request)
        # in flight: request_finished decrements this record's gauge
        request.hook_state[self] = record  # type: ignore[index] # a dict when the site has hooks
        sink = self._sink
        if sink is None:
            record.received.inc()
            record.in_flight.inc()
            return
        with sink.lock:
            record.n_received += 1
            record.running += 1
            sink.dirty_records.add(record)
            if sink.armed:
                return
            sink.armed = True
        sink.arm()

    def request_finished(self, request: SynapseRequest, body: ResponseBody) -> None:
        state = request.hook_state
        started: _ServletMetrics | None = state.pop(self, None) if state is not None else None
        # its servlet was final when the handler started; without a handler
        # (an unknown path, say) the request is counted now
        record = started if started is not None else self._find(request)
        code = request.response_code
        children = record.by_code.get(code)
        if children is None:
            method = request.method if request.method in _KNOWN_METHODS else "OTHER"
            children = self._code_children(record, method, request.servlet_name, code)
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
                record.received.inc()
            record.count.inc()
            children.responses.inc()
            children.response_time.observe(elapsed)
            if user > 0.0:
                record.utime.inc(user)
                record.in_flight_utime.inc(user)
            if system > 0.0:
                record.stime.inc(system)
                record.in_flight_stime.inc(system)
            if sent:
                record.size.inc(sent)
            return
        bucket = bisect_left(children.bounds, elapsed)
        with sink.lock:
            if started is not None:
                record.running -= 1
            else:
                record.n_received += 1
            record.n_responses += 1
            children.count += 1
            children.seconds += elapsed
            children.in_bucket[bucket] += 1
            record.utime_s += user
            record.stime_s += system
            record.size_bytes += sent
            sink.dirty_codes.add(children)
            sink.dirty_records.add(record)
            if sink.armed:
                return
            sink.armed = True
        sink.arm()


def metrics_registry() -> CollectorRegistry:
    """What a scrape should see: every worker's samples in multiprocess mode
    (`PROMETHEUS_MULTIPROC_DIR` set; they are read afresh at each scrape),
    else the default registry."""
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        registry = CollectorRegistry()
        prometheus_multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return registry
    return REGISTRY


def start_metrics_server(bind: str) -> tuple[str, int]:
    """Serve the metrics on a listener of their own, `host:port`, from a daemon thread.

    Synapse serves its metrics on a separate listener, never on the client
    port; this is prometheus_client's own server (`start_wsgi_server`) over
    `metrics_registry()`. Under gunicorn, start it in the arbiter (a
    `when_ready` hook, as the repository's gunicorn.conf.py does): there is
    one arbiter and it outlives its workers, and in multiprocess mode it sees
    every worker's samples. Port 0 picks a free port. Returns the address
    bound; raises `OSError` if it cannot be bound.
    """
    host, _, port = bind.rpartition(":")
    httpd, _thread = start_wsgi_server(
        int(port), host.strip("[]") or "127.0.0.1", registry=metrics_registry()
    )
    _servers.append(httpd)
    address = httpd.server_address
    return str(address[0]), int(address[1])


#: the listeners `start_metrics_server` opened in this process
_servers: list[Any] = []


def close_inherited_metrics_servers() -> None:
    """In a forked worker: close its copies of the parent's metrics listeners
    (only the parent serves them; the parent's own sockets stay open)."""
    for httpd in _servers:
        httpd.socket.close()
    _servers.clear()


class MetricsResource(Resource):
    """Serves the Prometheus text format; all workers' metrics in multiprocess mode.

    Mount it only where the public cannot reach it (or use
    `start_metrics_server`): the numbers tell which endpoints are used, how
    much, and how slow they are."""

    isLeaf = False
    result_kind = Kind.METRICS

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.registry = registry

    def get_handler(self, request: SynapseRequest) -> Handler:
        if request.method not in ("GET", "HEAD"):
            raise method_not_allowed(request, ["GET"])
        return self._render, {}

    def _render(self, request: SynapseRequest) -> Response:
        registry = metrics_registry() if self.registry is REGISTRY else self.registry
        body = generate_latest(registry)
        headers = [("Content-Type", CONTENT_TYPE_LATEST), ("Content-Length", str(len(body)))]
        return Response(200, headers, body, Kind.METRICS)
