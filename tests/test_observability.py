"""Issue 4 through the test Client: request ids, the access line, metrics, tracing."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry
from werkzeug.test import Client

from synwsgi import JsonResource, RootOptionsRedirectResource, ServerConfig, Site, SynapseError
from synwsgi.observability.accesslog import AccessLogger, redact_uri
from synwsgi.observability.logcontext import RequestIdFilter
from synwsgi.observability.metrics import MetricsResource, ServerMetrics
from synwsgi.observability.tracing import TRACE_ID_HEADER, Tracing

ACCESS_LINE = re.compile(
    r"^(?P<ip>\S+) - (?P<tag>\S+) - \{(?P<requester>[^}]*)\} Processed request: "
    r"(?P<processing>\d+\.\d{3})sec/(?P<send>\d+\.\d{3})sec "
    r"ru=\((?P<utime>\d+\.\d{3})sec, (?P<stime>\d+\.\d{3})sec\) "
    r"(?P<bytes>\d+)B (?P<status>\d{3}!?) "
    r'"(?P<method>\S+) (?P<uri>\S+) (?P<protocol>\S+)" "(?P<agent>[^"]*)"$'
)

handler_log = logging.getLogger("tests.handler")


def _app_resource() -> JsonResource:
    resource = JsonResource()

    def ok(request: Any, **params: str) -> tuple[int, Any]:
        handler_log.info("inside the handler")
        return 200, {"ok": True}

    def fail(request: Any) -> tuple[int, Any]:
        raise SynapseError(403, "no", "M_FORBIDDEN")

    def stream(request: Any) -> Iterator[bytes]:
        handler_log.info("before the first piece")
        yield b"["
        handler_log.info("in the middle of the body")
        yield b"]"

    def slow_stream(request: Any) -> Iterator[bytes]:
        yield b"x" * 100
        yield b"y" * 100

    resource.register_paths("GET", ["/api/ok"], ok, "OkServlet")
    resource.register_paths("GET", ["/api/fail"], fail, "FailServlet")
    resource.register_paths("GET", ["/api/stream"], stream, "StreamServlet")
    resource.register_paths("GET", ["/api/two-pieces"], slow_stream, "TwoPiecesServlet")
    resource.register_paths("GET", ["/api/rooms/<room_id>/members"], ok, "MembersServlet")
    return resource


def _site(*hooks: Any, config: ServerConfig | None = None, registry: CollectorRegistry | None = None) -> Site:
    resources: dict[str, Any] = {"/": RootOptionsRedirectResource("/ok"), "/api": _app_resource()}
    if registry is not None:
        resources["/metrics"] = MetricsResource(registry)
    return Site(resources, config or ServerConfig(min_chunk_size=1), hooks=hooks)


@pytest.fixture
def access_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    caplog.set_level(logging.DEBUG, logger="synwsgi.access")
    return caplog.records


def _access_lines(caplog: pytest.LogCaptureFixture) -> list[re.Match[str]]:
    lines = [r.getMessage() for r in caplog.records if r.name == "synwsgi.access"]
    matches = [ACCESS_LINE.match(line) for line in lines]
    assert all(matches), lines
    return [m for m in matches if m is not None]


def test_access_line_fields(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="synwsgi.access")
    client = Client(_site(AccessLogger("client")))
    response = client.get(
        "/api/ok?access_token=s3cret&x=1&client_secret=hush",
        headers={"User-Agent": "tester/1.0"},
        environ_base={"REMOTE_ADDR": "10.1.2.3"},
    )
    assert response.status_code == 200
    body_len = len(response.data)
    response.close()
    (line,) = _access_lines(caplog)
    assert line["ip"] == "10.1.2.3"
    assert line["tag"] == "client"
    assert line["requester"] == "None"
    assert line["status"] == "200"
    assert line["method"] == "GET"
    assert line["uri"] == "/api/ok?access_token=<redacted>&x=1&client_secret=<redacted>"
    assert line["protocol"] == "HTTP/1.1"
    assert line["agent"] == "tester/1.0"
    assert int(line["bytes"]) == body_len
    record = next(r for r in caplog.records if r.name == "synwsgi.access")
    assert record.levelno == logging.INFO
    assert "s3cret" not in caplog.text and "hush" not in caplog.text


def test_access_line_is_written_when_the_body_closes(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="synwsgi.access")
    client = Client(_site(AccessLogger()))
    response = client.get("/api/two-pieces", buffered=False)
    iterator = iter(response.response)
    next(iterator)
    assert _access_lines(caplog) == []  # the handler returned long ago; the body is still open
    response.close()
    (line,) = _access_lines(caplog)
    assert line["status"] == "200!", "closed before the end: the response did not finish"
    assert line["bytes"] == "100"


def test_access_line_for_errors_options_and_unknown_paths(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="synwsgi.access")
    client = Client(_site(AccessLogger()))
    for method, path in (("GET", "/api/fail"), ("OPTIONS", "/api/ok"), ("GET", "/nowhere")):
        response = client.open(path, method=method)
        response.get_data()
        response.close()
    lines = _access_lines(caplog)
    assert [(m["method"], m["status"]) for m in lines] == [("GET", "403"), ("OPTIONS", "204"), ("GET", "404")]
    levels = [r.levelno for r in caplog.records if r.name == "synwsgi.access"]
    assert levels == [logging.INFO, logging.DEBUG, logging.INFO]


def test_redact_uri_variants() -> None:
    assert redact_uri("/p", "") == "/p"
    assert redact_uri("/p", "access_token=a&b=2") == "/p?access_token=<redacted>&b=2"
    assert redact_uri("/p", "b=2;client_secret=c") == "/p?b=2;client_secret=<redacted>"
    assert redact_uri("/p", "ACCESS%5Ftoken=a") == "/p?ACCESS%5Ftoken=<redacted>"
    assert redact_uri("/p", "my_access_token=a") == "/p?my_access_token=a"


def test_proxy_headers_only_when_configured(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="synwsgi.access")
    headers = {"X-Forwarded-For": "203.0.113.9"}
    env = {"REMOTE_ADDR": "127.0.0.1"}
    Client(_site(AccessLogger())).get("/api/ok", headers=headers, environ_base=env).close()
    Client(_site(AccessLogger(), config=ServerConfig(behind_proxy=True))).get(
        "/api/ok", headers=headers, environ_base=env
    ).close()
    assert [m["ip"] for m in _access_lines(caplog)] == ["127.0.0.1", "203.0.113.9"]


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.addFilter(RequestIdFilter())
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def tagged_records() -> Iterator[list[logging.LogRecord]]:
    handler = _Collect()
    logger = logging.getLogger()
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield handler.records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


def test_request_id_tags_handler_body_and_access_records(tagged_records: list[logging.LogRecord]) -> None:
    client = Client(_site(AccessLogger()))
    response = client.get("/api/stream")
    assert response.data == b"[]"
    response.close()
    by_message = {r.getMessage().split(":")[0]: r.request for r in tagged_records}  # type: ignore[attr-defined]
    ids = {by_message["before the first piece"], by_message["in the middle of the body"]}
    assert len(ids) == 1
    (request_id,) = ids
    assert re.fullmatch(r"GET-[a-z2-7]{5}-\d+", request_id)
    access = [r for r in tagged_records if r.name == "synwsgi.access"]
    assert [r.request for r in access] == [request_id]  # type: ignore[attr-defined]
    outside = logging.LogRecord("x", logging.INFO, __file__, 1, "outside", None, None)
    RequestIdFilter().filter(outside)
    assert outside.request == "-"  # type: ignore[attr-defined]


def test_request_ids_increase_and_can_come_from_a_header(tagged_records: list[logging.LogRecord]) -> None:
    client = Client(_site())
    for _ in range(3):
        client.get("/api/ok").close()
    ids = [r.request for r in tagged_records if r.getMessage() == "inside the handler"]  # type: ignore[attr-defined]
    numbers = [int(i.rsplit("-", 1)[1]) for i in ids]
    assert len({i.rsplit("-", 1)[0] for i in ids}) == 1, ids  # one process, one tag
    assert numbers == sorted(numbers) and len(set(numbers)) == 3
    tagged_records.clear()
    config = ServerConfig(request_id_header="X-Request-ID")
    Client(_site(config=config)).get("/api/ok", headers={"X-Request-ID": "abc123"}).close()
    assert [r.request for r in tagged_records if r.getMessage() == "inside the handler"] == [  # type: ignore[attr-defined]
        "GET-abc123"
    ]


def test_request_ids_stay_apart_under_concurrency(tagged_records: list[logging.LogRecord]) -> None:
    client_app = _site()
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            for _ in range(20):
                Client(client_app).get("/api/ok").close()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    ids = [r.request for r in tagged_records if r.getMessage() == "inside the handler"]  # type: ignore[attr-defined]
    assert len(ids) == 80 and len(set(ids)) == 80


def _sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, {**labels, "server_name": ""})
    return 0.0 if value is None else value


def test_metrics_by_servlet_from_the_registry() -> None:
    registry = CollectorRegistry()
    client = Client(_site(ServerMetrics(registry, tag="t"), registry=registry))
    for path in ("/api/ok", "/api/ok", "/api/fail", "/api/rooms/!a:b/members", "/api/rooms/!c:d/members"):
        client.get(path).close()
    for path in ("/api/nope/1", "/api/nope/2", "/elsewhere/3"):
        client.get(path).close()
    prefix = "synapse_http_server"
    assert _sample(registry, f"{prefix}_requests_received_total", method="GET", servlet="OkServlet") == 2
    assert _sample(registry, f"{prefix}_requests_received_total", method="GET", servlet="MembersServlet") == 2
    assert _sample(registry, f"{prefix}_responses_total", method="GET", code="200") == 4
    assert _sample(registry, f"{prefix}_responses_total", method="GET", code="403") == 1
    assert _sample(registry, f"{prefix}_responses_total", method="GET", code="404") == 3
    assert (
        _sample(
            registry,
            f"{prefix}_requests_received_total",
            method="GET",
            servlet="unrecognised_request_handler",
        )
        == 3
    ), "unknown paths share one label value"
    assert (
        _sample(
            registry,
            f"{prefix}_response_time_seconds_count",
            method="GET",
            servlet="OkServlet",
            tag="t",
            code="200",
        )
        == 2
    )
    size = _sample(registry, f"{prefix}_response_size_total", method="GET", servlet="OkServlet", tag="t")
    assert size == 2 * len(b'{"ok":true}')
    assert _sample(registry, f"{prefix}_in_flight_requests_count", method="GET", servlet="OkServlet") == 0
    # No path (or room id) ever becomes a label value.
    for metric in registry.collect():
        for sample in metric.samples:
            assert not any("!" in v or "/" in v for v in sample.labels.values()), sample


def test_in_flight_counts_a_running_handler() -> None:
    registry = CollectorRegistry()
    metrics = ServerMetrics(registry)
    seen: list[float] = []
    resource = JsonResource()

    def handler(request: Any) -> tuple[int, Any]:
        seen.append(
            _sample(registry, "synapse_http_server_in_flight_requests_count", method="GET", servlet="Busy")
        )
        return 200, {}

    resource.register_paths("GET", ["/busy"], handler, "Busy")
    Client(Site({"/": resource}, hooks=[metrics])).get("/busy").close()
    assert seen == [1.0]
    assert (
        _sample(registry, "synapse_http_server_in_flight_requests_count", method="GET", servlet="Busy") == 0
    )


def test_metrics_resource_serves_the_text_format() -> None:
    registry = CollectorRegistry()
    client = Client(_site(ServerMetrics(registry), registry=registry))
    client.get("/api/ok").close()
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    assert (
        b'synapse_http_server_requests_received_total{method="GET",server_name="",servlet="OkServlet"} 1.0'
        in response.data
    )
    assert client.post("/metrics").status_code == 405


@pytest.fixture(scope="module")
def span_exporter() -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return exporter


def test_one_span_per_request_named_after_the_servlet(span_exporter: InMemorySpanExporter) -> None:
    span_exporter.clear()
    client = Client(_site(Tracing()))
    response = client.get("/api/rooms/!x:y/members")
    trace_id = response.headers[TRACE_ID_HEADER]
    response.close()
    client.get("/api/fail").close()
    first, second = span_exporter.get_finished_spans()
    assert first.name == "MembersServlet"
    assert first.kind == trace.SpanKind.SERVER
    assert first.attributes is not None
    assert first.attributes["http.request.method"] == "GET"
    assert first.attributes["http.route"] == "/api/rooms/<room_id>/members"
    assert first.attributes["http.response.status_code"] == 200
    assert re.fullmatch(r"GET-[a-z2-7]{5}-\d+", str(first.attributes["synwsgi.request_id"]))
    assert format(first.context.trace_id, "032x") == trace_id
    assert second.name == "FailServlet"
    assert second.attributes is not None and second.attributes["http.response.status_code"] == 403


def test_handler_spans_are_children_of_the_request_span(span_exporter: InMemorySpanExporter) -> None:
    span_exporter.clear()
    resource = JsonResource()

    def handler(request: Any) -> tuple[int, Any]:
        with trace.get_tracer("test").start_as_current_span("db-query"):
            return 200, {}

    resource.register_paths("GET", ["/q"], handler, "QueryServlet")
    Client(Site({"/": resource}, hooks=[Tracing()])).get("/q").close()
    child, parent = span_exporter.get_finished_spans()
    assert child.name == "db-query" and parent.name == "QueryServlet"
    assert child.parent is not None and child.parent.span_id == parent.context.span_id


def test_no_trace_header_without_tracing() -> None:
    response = Client(_site()).get("/api/ok")
    assert TRACE_ID_HEADER not in response.headers
