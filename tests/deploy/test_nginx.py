"""The showcase behind Debian's nginx, configured exactly as docs/deployment.rst shows.

nginx (deploy/nginx/synwsgi.conf + synwsgi-proxy.conf, TLS with a throwaway
certificate) runs on 127.0.0.1 in front of real gunicorn started with the
environment of deploy/synwsgi.service. Clients speak TLS to nginx over raw
sockets, some bound to 127.0.0.2 so that the client's address differs from
nginx's own.
"""

from __future__ import annotations

import json
import re
import socket
import ssl
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from synwsgi import ServerConfig
from tests._nginx import Nginx, nginx_server
from tests.deploy.conftest import (
    PROXY_SNIPPET,
    SERVER_NAME,
    SITE_CONF,
    UPSTREAM_CONF,
    site_config,
    start_nginx,
)
from tests.integration.helpers import demo_stats, request_bytes, wait_for_stat
from tests.integration.servers import RawResponse, Server, http_get, metrics_get, read_response

CLIENT_ADDRESS = "127.0.0.2"  # nginx connects to gunicorn from 127.0.0.1


def tls_connect(
    nginx: Nginx, cert: Path, *, source: str | None = None, timeout: float = 10.0
) -> ssl.SSLSocket:
    """A TLS connection to nginx that checks its certificate for SERVER_NAME."""
    context = ssl.create_default_context(cafile=str(cert))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        if source:
            sock.bind((source, 0))
        sock.connect((nginx.host, nginx.port))
        return context.wrap_socket(sock, server_hostname=SERVER_NAME)
    except BaseException:
        sock.close()
        raise


def fetch(
    nginx: Nginx,
    cert: Path,
    method: str,
    target: str,
    headers: Mapping[str, str] | None = None,
    body: bytes = b"",
    *,
    source: str | None = None,
) -> RawResponse:
    """One request on its own connection; the raw target goes on the wire as given."""
    all_headers = {"Host": SERVER_NAME, "Connection": "close", **(headers or {})}
    if body:
        all_headers["Content-Length"] = str(len(body))
    with tls_connect(nginx, cert, source=source) as conn:
        conn.sendall(request_bytes(method, target, all_headers, body))
        return read_response(conn)


def processed_line(server: Server, marker: str, *, timeout: float = 10.0) -> str:
    """synwsgi's "Processed request" access line for the request carrying ``marker``."""
    return server.wait_for_log(re.compile(r"Processed request: .*" + re.escape(marker)), timeout=timeout)


def logged_client(line: str) -> str:
    match = re.search(r"(\S+) - synwsgi - \{", line)
    assert match, line
    return match[1]


@pytest.fixture(scope="module")
def cert(certificate: tuple[Path, Path]) -> Path:
    return certificate[0]


# -- the raw path ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "room_id", "event_type"),
    [
        # %2F inside a parameter stays inside it, decoded exactly once.
        ("/_matrix/client/v3/rooms/!a%2Fb:example.org/state/m.room.name", "!a/b:example.org", "m.room.name"),
        # A snowman, percent-encoded as UTF-8.
        (
            "/_matrix/client/v3/rooms/!%E2%98%83:example.org/state/m.room.topic",
            "!☃:example.org",
            "m.room.topic",
        ),
        # %25 decodes to "%" and no further: %252F arrives as the three characters %2F.
        ("/_matrix/client/v3/rooms/!x%252Fy%2F%E2%98%83:h/state/a%2Fb", "!x%2Fy/☃:h", "a/b"),
    ],
)
def test_path_parameters_arrive_decoded_once(
    nginx_proxied: Nginx, cert: Path, target: str, room_id: str, event_type: str
) -> None:
    response = fetch(nginx_proxied, cert, "GET", target)
    assert response.status == 200, response
    assert json.loads(response.body) == {"room_id": room_id, "event_type": event_type, "state_key": ""}


def test_a_uri_part_in_proxy_pass_would_break_them(
    gunicorn_proxied: Server, certificate: tuple[Path, Path]
) -> None:
    """The control: `proxy_pass http://host:port/;` (a URI part) makes nginx decode %2F."""
    text = SITE_CONF.read_text().replace(
        "proxy_pass http://127.0.0.1:8008;", "proxy_pass http://127.0.0.1:8008/;"
    )
    with nginx_server(
        lambda port, _dir: site_config(
            text, port=port, upstream_ports=[gunicorn_proxied.port], cert=certificate[0], key=certificate[1]
        ),
        files={"snippets/synwsgi-proxy.conf": PROXY_SNIPPET.read_text()},
    ) as nginx:
        response = fetch(
            nginx, certificate[0], "GET", "/_matrix/client/v3/rooms/!a%2Fb:example.org/state/m.room.name"
        )
    # The decoded "/" splits the room id into two segments: no servlet matches.
    assert response.status == 404, response
    assert json.loads(response.body)["errcode"] == "M_UNRECOGNIZED"


# -- cancellation ------------------------------------------------------------------------


def test_client_leaving_nginx_cancels_the_handler(
    nginx_proxied: Nginx, gunicorn_proxied: Server, cert: Path, measure_deploy: dict[str, float]
) -> None:
    before = demo_stats(gunicorn_proxied)
    received = _received(gunicorn_proxied, "SlowServlet")
    marker = uuid.uuid4().hex
    target = f"/_demo/slow?seconds=30&m={marker}"
    conn = tls_connect(nginx_proxied, cert)
    try:
        conn.sendall(request_bytes("GET", target, {"Host": SERVER_NAME}))
        # Leave only once gunicorn has the request (its metrics count it before
        # the handler runs), else nginx could drop it before synwsgi ever sees it.
        _wait_received(gunicorn_proxied, "SlowServlet", received + 1)
        time.sleep(0.2)
        conn.settimeout(0.1)
        with pytest.raises(TimeoutError):
            conn.recv(1)  # still waiting: the handler sleeps 30 s
    finally:
        left = time.monotonic()
        conn.close()
    stats, delay = wait_for_stat(gunicorn_proxied, "cancelled", before["cancelled"], since=left, timeout=10)
    measure_deploy["cancel_after_client_left_s"] = delay
    assert stats["completed"] == before["completed"]
    assert re.search(r'" 499 ', nginx_proxied.wait_for_access(marker)), (
        "nginx logs 499 (client closed request)"
    )
    line = processed_line(gunicorn_proxied, marker)
    assert re.search(r"B 499!? \"GET /_demo/slow\?seconds=30", line), line


def _received(server: Server, servlet: str) -> int:
    """``requests_received_total`` for ``servlet`` on the server's /metrics (batched: may lag 0.25 s)."""
    status, body = metrics_get(server)
    assert status == 200
    labels = f'method="GET",server_name="",servlet="{servlet}"'
    pattern = rf"^synapse_http_server_requests_received_total{{{labels}}} (\S+)$"
    match = re.search(pattern, body.decode(), re.MULTILINE)
    return int(float(match[1])) if match else 0


def _wait_received(server: Server, servlet: str, count: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while _received(server, servlet) < count:
        assert time.monotonic() < deadline, f"{servlet} never received the request:\n{server.log_tail()}"
        time.sleep(0.02)


# -- streaming ---------------------------------------------------------------------------


def test_streamed_body_arrives_whole(nginx_proxied: Nginx, cert: Path) -> None:
    size = 3 * 1024 * 1024
    with tls_connect(nginx_proxied, cert, timeout=30) as conn:
        conn.sendall(
            request_bytes("GET", f"/_demo/stream?bytes={size}", {"Host": SERVER_NAME, "Connection": "close"})
        )
        response = read_response(conn)
    assert response.status == 200
    assert response.complete, "the chunked body ended without its last chunk"
    assert response.headers.get("Transfer-Encoding") == "chunked"
    items = json.loads(response.body)
    assert len(response.body) >= size
    assert len(items) == len(response.body) // (64 * 1024)
    assert all(item == "x" * (64 * 1024 - 3) for item in items)


# -- the client's address ----------------------------------------------------------------


@pytest.mark.parametrize("spoofed", [None, "203.0.113.9"])
def test_access_line_shows_the_real_client_behind_proxy(
    nginx_proxied: Nginx, gunicorn_proxied: Server, cert: Path, spoofed: str | None
) -> None:
    marker = uuid.uuid4().hex
    headers = {"X-Forwarded-For": spoofed} if spoofed else {}
    response = fetch(
        nginx_proxied, cert, "GET", f"/_matrix/client/versions?m={marker}", headers, source=CLIENT_ADDRESS
    )
    assert response.status == 200
    # nginx replaces the client's X-Forwarded-For, so a made-up one is not believed.
    assert logged_client(processed_line(gunicorn_proxied, marker)) == CLIENT_ADDRESS
    assert nginx_proxied.wait_for_access(marker).startswith(CLIENT_ADDRESS + " ")


def test_access_line_shows_nginx_without_behind_proxy(
    nginx_direct: Nginx, gunicorn_direct: Server, cert: Path
) -> None:
    marker = uuid.uuid4().hex
    response = fetch(nginx_direct, cert, "GET", f"/_matrix/client/versions?m={marker}", source=CLIENT_ADDRESS)
    assert response.status == 200
    assert logged_client(processed_line(gunicorn_direct, marker)) == "127.0.0.1"
    assert nginx_direct.wait_for_access(marker).startswith(CLIENT_ADDRESS + " ")


# -- CORS --------------------------------------------------------------------------------


def test_cors_preflight_passes_through(nginx_proxied: Nginx, cert: Path) -> None:
    target = "/_matrix/client/v3/rooms/!r:example.org/send/m.room.message/txn1"
    origin = "https://app.example.com"
    preflight = fetch(
        nginx_proxied,
        cert,
        "OPTIONS",
        target,
        {
            "Origin": origin,
            "Access-Control-Request-Method": "PUT",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert preflight.status in (200, 204), preflight  # Synapse answers 204 now, 200 before
    assert preflight.headers.get("Access-Control-Allow-Origin") == "*"
    assert "PUT" in (preflight.headers.get("Access-Control-Allow-Methods") or "")
    assert "authorization" in (preflight.headers.get("Access-Control-Allow-Headers") or "").lower()
    put = fetch(
        nginx_proxied,
        cert,
        "PUT",
        target,
        {"Origin": origin, "Content-Type": "application/json"},
        b'{"body": "hi"}',
    )
    assert put.status == 200, put
    assert put.headers.get("Access-Control-Allow-Origin") == "*"
    assert json.loads(put.body)["content"] == {"body": "hi"}


# -- limits ------------------------------------------------------------------------------


def _nginx_size(value: str) -> int:
    units = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
    match = re.fullmatch(r"(\d+)([kmg]?)", value.lower())
    assert match, value
    return int(match[1]) * units[match[2]]


@pytest.mark.parametrize("conf", [SITE_CONF, UPSTREAM_CONF], ids=lambda p: p.name)
def test_client_max_body_size_equals_max_request_body_size(conf: Path) -> None:
    sizes = re.findall(r"^\s*client_max_body_size\s+(\S+);", conf.read_text(), re.MULTILINE)
    assert sizes, f"{conf.name} sets no client_max_body_size"
    assert {_nginx_size(size) for size in sizes} == {ServerConfig().max_request_body_size}


def test_body_over_the_limit_is_refused_by_nginx(nginx_proxied: Nginx, cert: Path) -> None:
    too_big = ServerConfig().max_request_body_size + 1
    with tls_connect(nginx_proxied, cert) as conn:
        conn.sendall(
            request_bytes(
                "POST",
                "/_demo/echo",
                {"Host": SERVER_NAME, "Content-Length": str(too_big), "Connection": "close"},
            )
        )
        response = read_response(conn)
    assert response.status == 413


# -- several hosts -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def nginx_upstream(
    gunicorn_proxied: Server, gunicorn_direct: Server, certificate: tuple[Path, Path]
) -> Iterator[Nginx]:
    """deploy/nginx/synwsgi-upstream.conf in front of two gunicorn instances."""
    yield from start_nginx(UPSTREAM_CONF, [gunicorn_proxied.port, gunicorn_direct.port], certificate)


def test_upstream_spreads_requests_over_every_host(
    nginx_upstream: Nginx, gunicorn_proxied: Server, gunicorn_direct: Server, cert: Path
) -> None:
    markers = [uuid.uuid4().hex for _ in range(4)]
    for marker in markers:
        response = fetch(nginx_upstream, cert, "GET", f"/_matrix/client/versions?m={marker}")
        assert response.status == 200
    servers = (gunicorn_proxied, gunicorn_direct)
    deadline = time.monotonic() + 10
    while True:  # each access line is written when its body closes, just after nginx has it
        served = [sum(marker in server.log() for marker in markers) for server in servers]
        if sum(served) >= len(markers) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert sum(served) == len(markers), served
    assert all(count >= 1 for count in served), served


@pytest.fixture(scope="module")
def measure_deploy() -> Iterator[dict[str, float]]:
    numbers: dict[str, float] = {}
    yield numbers
    for name, value in numbers.items():
        print(f"deploy measurement: {name} = {value:.3f}")


def test_metrics_are_not_public(nginx_proxied: Nginx, gunicorn_proxied: Server, cert: Path) -> None:
    assert fetch(nginx_proxied, cert, "GET", "/metrics").status == 403
    # ... nor does the app serve them there: they are on a listener of their own.
    assert http_get(gunicorn_proxied, "/metrics")[0] == 404
    status, body = metrics_get(gunicorn_proxied)
    assert status == 200 and b"synapse_http_server_requests_received_total" in body
