"""Testing a synwsgi app: docs/testing.rst shows this file."""

from __future__ import annotations

import json
import socket
import time
import urllib.request
from urllib.parse import urlsplit

from prometheus_client import CollectorRegistry
from werkzeug.test import Client


def test_a_room(client: Client) -> None:
    response = client.get("/_matrix/client/v3/rooms/!tea:example.org")
    assert response.status_code == 200
    assert response.get_json() == {"name": "Tea", "room_id": "!tea:example.org"}


def test_an_unknown_room_is_a_matrix_error(client: Client) -> None:
    response = client.get("/_matrix/client/v3/rooms/!nope:example.org")
    assert response.status_code == 404
    assert response.get_json() == {"errcode": "M_NOT_FOUND", "error": "No such room"}


def test_metrics_count_by_servlet(client: Client, registry: CollectorRegistry) -> None:
    client.get("/_matrix/client/v3/rooms/!tea:example.org").close()  # hooks finish on close
    count = registry.get_sample_value(
        "synapse_http_server_response_time_seconds_count",  # Synapse's names, so its dashboard works
        {"method": "GET", "servlet": "RoomServlet", "tag": "synwsgi", "code": "200", "server_name": ""},
    )
    assert count == 1.0


def _counts(server: str) -> dict[str, int]:
    with urllib.request.urlopen(server + "/_test/counts", timeout=5) as response:
        counts: dict[str, int] = json.load(response)
        return counts


def test_a_client_that_leaves_cancels_the_handler(server: str) -> None:
    """Only a real server has a client that can leave: open a socket, ask, hang up."""
    before = _counts(server)["cancelled"]
    address = urlsplit(server)
    with socket.create_connection((address.hostname, address.port)) as sock:
        sock.sendall(b"GET /_test/slow?seconds=30 HTTP/1.1\r\nHost: test\r\n\r\n")
        time.sleep(0.5)  # the handler is sleeping now
    deadline = time.monotonic() + 10
    while _counts(server)["cancelled"] == before:
        assert time.monotonic() < deadline, "the handler was not cancelled"
        time.sleep(0.05)
