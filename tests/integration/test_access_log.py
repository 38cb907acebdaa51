"""What the toolkit's "Processed request" access line says about disconnects.

Serves ``_logged_app.py`` (the showcase app with ``logging_config("INFO")``
applied, as the project's ``gunicorn.conf.py`` does), and reads the server's
output:

* a cancelled ``@cancellable`` request is logged as 499 (Synapse: ``499!``);
* an uncancellable handler whose client left runs to the end and is logged
  with ``!`` (``200!``): the response did not reach anyone;
* a stream the client abandoned is logged ``200!`` too, a finished one ``200``;
* keep-alive (gthread, gevent): every request on one connection has its own
  request id.

Each request carries a unique ``t=<token>`` in its query so its line can be
found.
"""

from __future__ import annotations

import re
import time
import uuid

import pytest

from .helpers import demo_stats, request_bytes, wait_for_stat
from .servers import Server, http_get, open_connection, read_response

pytestmark = pytest.mark.integration

PROCESSED = re.compile(
    r" - (?P<request_id>[A-Z]+-\S+) - .*Processed request: .* (?P<code>\d{3}!?) "
    r'"(?P<method>[A-Z]+) (?P<uri>\S+) HTTP/1\.[01]"'
)


@pytest.fixture(scope="module")
def server_app() -> str:
    return "tests.integration._logged_app:app"


def _token() -> str:
    return uuid.uuid4().hex[:12]


def _processed(server: Server, token: str, *, since: int, timeout: float = 5.0) -> re.Match[str]:
    line = server.wait_for_log(
        re.compile(rf"Processed request: .*[?&]t={token}\b"), since=since, timeout=timeout
    )
    match = PROCESSED.search(line)
    assert match, line
    return match


def test_cancelled_request_is_logged_499(any_server: Server) -> None:
    token, mark = _token(), any_server.log_mark()
    before = demo_stats(any_server)
    with open_connection(any_server, timeout=5) as sock:
        sock.sendall(request_bytes("GET", f"/_demo/slow?seconds=10&t={token}"))
        time.sleep(0.4)
    wait_for_stat(any_server, "cancelled", before["cancelled"], since=time.monotonic(), timeout=3)
    match = _processed(any_server, token, since=mark)
    assert match["code"] in ("499", "499!"), match.group(0)
    log = any_server.log(since=mark)
    assert "Traceback" not in log, log


def test_abandoned_uncancellable_request_is_logged_with_bang(any_server: Server) -> None:
    token, mark = _token(), any_server.log_mark()
    with open_connection(any_server, timeout=5) as sock:
        sock.sendall(request_bytes("GET", f"/_demo/slow-uncancellable?seconds=0.5&t={token}"))
        time.sleep(0.2)
    match = _processed(any_server, token, since=mark)
    assert match["code"] == "200!", match.group(0)


def test_abandoned_stream_is_logged_with_bang(any_server: Server) -> None:
    token, mark = _token(), any_server.log_mark()
    with open_connection(any_server, timeout=5) as sock:
        sock.sendall(request_bytes("GET", f"/_demo/stream?bytes={1024**3}&t={token}"))
        received = 0
        while received < 256 * 1024:
            data = sock.recv(65536)
            assert data
            received += len(data)
    match = _processed(any_server, token, since=mark)
    assert match["code"] == "200!", match.group(0)


def test_finished_requests_are_logged_without_bang(any_server: Server) -> None:
    token, mark = _token(), any_server.log_mark()
    status, _, _ = http_get(any_server, f"/_demo/stream?bytes=200000&t={token}")
    assert status == 200
    assert _processed(any_server, token, since=mark)["code"] == "200"
    token = _token()
    status, _, _ = http_get(any_server, f"/_demo/slow?seconds=0.05&t={token}")
    assert status == 200
    assert _processed(any_server, token, since=mark)["code"] == "200"


def test_keepalive_requests_have_their_own_request_ids(keepalive_server: Server) -> None:
    tokens = [_token() for _ in range(10)]
    mark = keepalive_server.log_mark()
    with open_connection(keepalive_server, timeout=5) as sock:
        fp = sock.makefile("rb")
        for i, token in enumerate(tokens):
            path = "/_matrix/client/versions" if i % 2 else "/_demo/slow?seconds=0.01"
            sock.sendall(request_bytes("GET", f"{path}{'&' if '?' in path else '?'}t={token}"))
            resp = read_response(fp)
            assert resp.status == 200, resp
        fp.close()
    ids = [_processed(keepalive_server, token, since=mark)["request_id"] for token in tokens]
    assert len(set(ids)) == len(ids), ids
