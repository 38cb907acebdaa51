"""The example's metrics under a real gunicorn: on a listener of their own, counting
what the client port served, and added up over every worker (prometheus'
multiprocess mode, which the example's gunicorn.conf.py turns on for several
workers)."""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from ._client_helpers import raw_json
from .conftest import start_homeserver

pytestmark = pytest.mark.timeout(120)


def test_metrics_listener_counts_the_client_requests(homeserver: Any) -> None:
    """The metrics are on their own listener, and count what the client port served."""
    assert raw_json(homeserver.url, "GET", "/_matrix/client/versions")[0] == 200
    status, _ = raw_json(homeserver.url, "GET", "/_synapse/metrics")
    assert status == 404
    metrics_url = f"http://127.0.0.1:{homeserver.metrics_port}"
    with urllib.request.urlopen(f"{metrics_url}/_synapse/metrics", timeout=10) as response:
        text = response.read().decode()
    versions = [
        line for line in text.splitlines() if 'servlet="VersionsServlet"' in line and "received" in line
    ]
    assert versions and float(versions[0].rsplit(" ", 1)[1]) >= 1
    # And the client API is not served there.
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{metrics_url}/_matrix/client/versions", timeout=10)
    assert refused.value.code == 404


def test_metrics_add_up_every_workers_requests(tmp_path: Path) -> None:
    """With two workers, every scrape (answered by either) counts the requests both served."""
    with start_homeserver(str(tmp_path / "hs.db"), workers=2) as server:
        for _ in range(40):  # a new connection each: both workers take some
            assert raw_json(server.url, "GET", "/_matrix/client/v3/publicRooms")[0] == 200
        time.sleep(1.0)  # past the multiprocess batch interval
        counts = []
        for _ in range(6):
            url = f"http://127.0.0.1:{server.metrics_port}/_synapse/metrics"
            with urllib.request.urlopen(url, timeout=10) as response:
                text = response.read().decode()
            counts.append(
                sum(
                    float(line.rsplit(" ", 1)[1])
                    for line in text.splitlines()
                    if line.startswith("synapse_http_server_requests_received_total{")
                    and 'servlet="PublicRoomsServlet"' in line
                )
            )
        assert counts == [40.0] * 6
        # The parked-polls gauge too: a long-poll on either worker shows in every scrape.
        status, body = raw_json(
            server.url,
            "POST",
            "/_matrix/client/v3/register",
            {"username": "gauge", "password": "pw", "auth": {"type": "m.login.dummy"}},
        )
        assert status == 200, body
        since = raw_json(server.url, "GET", "/_matrix/client/v3/sync", token=body["access_token"])[1][
            "next_batch"
        ]
        poll = threading.Thread(
            target=raw_json,
            args=(server.url, "GET", f"/_matrix/client/v3/sync?timeout=3000&since={since}"),
            kwargs={"token": body["access_token"]},
        )
        poll.start()
        time.sleep(1.0)
        assert [parked(server.metrics_port) for _ in range(4)] == [1.0] * 4
        poll.join(10)
        time.sleep(0.5)
        assert parked(server.metrics_port) == 0.0


def parked(metrics_port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/_synapse/metrics", timeout=10) as response:
        lines = response.read().decode().splitlines()
    return sum(float(line.split()[1]) for line in lines if line.startswith("synapse_notifier_listeners "))
