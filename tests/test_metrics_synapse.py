"""Issue 17 item 9: the HTTP metrics are Synapse's, so its Grafana dashboard works.

The expected names, types and label sets are pinned from Synapse's
`synapse/http/request_metrics.py` (element-hq/synapse, 2025: every metric
there also carries its `server_name` label, `SERVER_NAME_LABEL` in
`synapse/metrics/__init__.py`); its `response_time_seconds` histogram uses
prometheus_client's default buckets.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Histogram
from werkzeug.test import Client

from synwsgi import JsonResource, ServerConfig, Site
from synwsgi.observability.metrics import ServerMetrics

BY_SERVLET = ("method", "servlet", "server_name")
BY_TAG = ("method", "servlet", "tag", "server_name")

#: synapse/http/request_metrics.py: name -> (type, label names)
SYNAPSE_HTTP_METRICS: dict[str, tuple[str, tuple[str, ...]]] = {
    "synapse_http_server_response_count": ("counter", BY_TAG),
    "synapse_http_server_requests_received": ("counter", BY_SERVLET),
    "synapse_http_server_responses": ("counter", ("method", "code", "server_name")),
    "synapse_http_server_response_time_seconds": (
        "histogram",
        ("method", "servlet", "tag", "code", "server_name"),
    ),
    "synapse_http_server_response_ru_utime_seconds": ("counter", BY_TAG),
    "synapse_http_server_response_ru_stime_seconds": ("counter", BY_TAG),
    "synapse_http_server_response_db_txn_count": ("counter", BY_TAG),
    "synapse_http_server_response_db_txn_duration_seconds": ("counter", BY_TAG),
    "synapse_http_server_response_db_sched_duration_seconds": ("counter", BY_TAG),
    "synapse_http_server_response_size": ("counter", BY_TAG),
    "synapse_http_server_in_flight_requests_ru_utime_seconds": ("counter", BY_SERVLET),
    "synapse_http_server_in_flight_requests_ru_stime_seconds": ("counter", BY_SERVLET),
    "synapse_http_server_in_flight_requests_db_txn_count": ("counter", BY_SERVLET),
    "synapse_http_server_in_flight_requests_db_txn_duration_seconds": ("counter", BY_SERVLET),
    "synapse_http_server_in_flight_requests_db_sched_duration_seconds": ("counter", BY_SERVLET),
    "synapse_http_server_in_flight_requests_count": ("gauge", BY_SERVLET),
}
#: measured by Synapse's database layer, which synwsgi does not have
NOT_MEASURED = {name for name in SYNAPSE_HTTP_METRICS if "_db_" in name}


def _site(metrics: ServerMetrics, config: ServerConfig | None = None) -> Site:
    resource = JsonResource()
    resource.register_paths("GET", ["/ok"], lambda request: (200, {"ok": True}), "OkServlet")
    return Site({"/": resource}, config, hooks=[metrics])


def _families(registry: CollectorRegistry) -> dict[str, Any]:
    return {metric.name: metric for metric in registry.collect()}


def test_names_types_and_labels_are_synapses() -> None:
    registry = CollectorRegistry()
    Client(_site(ServerMetrics(registry))).get("/ok").close()
    families = _families(registry)
    expected = {name: kind for name, kind in SYNAPSE_HTTP_METRICS.items() if name not in NOT_MEASURED}
    assert set(families) == set(expected)
    for name, (kind, labels) in expected.items():
        family = families[name]
        assert family.type == kind, name
        seen = {tuple(k for k in sample.labels if k != "le") for sample in family.samples}
        assert seen == {labels}, (name, seen)


def test_response_time_buckets_are_synapses() -> None:
    registry = CollectorRegistry()
    Client(_site(ServerMetrics(registry))).get("/ok").close()
    family = _families(registry)["synapse_http_server_response_time_seconds"]
    bounds = [float(s.labels["le"]) for s in family.samples if s.name.endswith("_bucket")]
    assert bounds == list(Histogram.DEFAULT_BUCKETS)


def test_prefix_is_configurable() -> None:
    registry = CollectorRegistry()
    Client(_site(ServerMetrics(registry, prefix="myapp_http"))).get("/ok").close()
    names = set(_families(registry))
    assert "myapp_http_requests_received" in names
    assert not any(name.startswith("synapse_") for name in names)


def test_site_tag_reaches_the_tag_label() -> None:
    registry = CollectorRegistry()
    Client(_site(ServerMetrics(registry), ServerConfig(site_tag="client"))).get("/ok").close()
    labels = {"method": "GET", "servlet": "OkServlet", "tag": "client", "server_name": ""}
    assert registry.get_sample_value("synapse_http_server_response_count_total", labels) == 1
    # ... unless the metrics are given a tag of their own; and server_name is theirs
    Client(_site(ServerMetrics(registry, tag="mine", server_name="example.org"))).get("/ok").close()
    labels = {"method": "GET", "servlet": "OkServlet", "tag": "mine", "server_name": "example.org"}
    assert registry.get_sample_value("synapse_http_server_response_count_total", labels) == 1


def test_two_in_one_registry_share_the_metrics() -> None:
    # An app factory called twice in one process (as tests do): no
    # DuplicateTimeseries, and both sites' requests count in the registry.
    registry = CollectorRegistry()
    for _ in range(2):
        Client(_site(ServerMetrics(registry))).get("/ok").close()
    labels = {"method": "GET", "servlet": "OkServlet", "server_name": ""}
    assert registry.get_sample_value("synapse_http_server_requests_received_total", labels) == 2


def test_the_default_registry_can_be_used_twice() -> None:
    first, second = ServerMetrics(), ServerMetrics()
    assert first.collectors is second.collectors
    assert REGISTRY.get_sample_value("synapse_http_server_requests_received_total", {}) is None
