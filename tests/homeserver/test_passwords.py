"""Password hashes: bcrypt, old PBKDF2 hashes still accepted (and upgraded), and hashing off the hub."""

from __future__ import annotations

import http.client
import statistics
import threading
import time
from pathlib import Path

from werkzeug.test import Client

from examples.homeserver.app import create_app
from examples.homeserver.passwords import PasswordHasher, pbkdf2_hash

from ._client_helpers import raw_json
from .conftest import start_homeserver

API = "/_matrix/client/v3"


def login(client: Client, user: str, password: str) -> int:
    body = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": user},
        "password": password,
    }
    return client.post(f"{API}/login", json=body).status_code


def test_bcrypt_hashes_and_old_pbkdf2_hashes_upgraded_at_login() -> None:
    app = create_app(database=":memory:", bcrypt_rounds=4)
    hs = app.homeserver  # type: ignore[attr-defined]
    try:
        client = Client(app)
        register = {"username": "alice", "password": "secret", "auth": {"type": "m.login.dummy"}}
        assert client.post(f"{API}/register", json=register).status_code == 200
        stored = hs.store.get_password_hash("@alice:localhost")
        assert stored.startswith("$2b$04$")
        assert login(client, "alice", "secret") == 200
        assert login(client, "alice", "wrong") == 403
        # A user stored by the earlier example (PBKDF2): still logs in, and is rehashed.
        assert hs.store.create_user("@old:localhost", pbkdf2_hash("before", iterations=1000), 0)
        assert login(client, "old", "wrong") == 403
        assert hs.store.get_password_hash("@old:localhost").startswith("pbkdf2_sha256$")
        assert login(client, "old", "before") == 200
        assert hs.store.get_password_hash("@old:localhost").startswith("$2b$04$")
        assert login(client, "old", "before") == 200
    finally:
        hs.close()


def test_bcrypt_looks_at_72_bytes_as_synapse_does() -> None:
    hasher = PasswordHasher(rounds=4)
    long = "x" * 100
    stored = hasher.hash(long)
    assert hasher.verify(long, stored) and hasher.verify("x" * 72 + "y", stored)
    assert not hasher.verify("x" * 71, stored)


def test_logins_leave_the_gevent_worker_responsive(tmp_path: Path) -> None:
    """While 20 logins hash on one gevent worker, a small request there answers within 20 ms.

    Probes one at a time on a kept-alive connection, every 10 ms, for as long as the logins run.
    """
    database = str(tmp_path / "homeserver.db")
    with start_homeserver(database, SYNWSGI_HS_BCRYPT_ROUNDS="10") as server:
        body = {"username": "hasher", "password": "pw", "auth": {"type": "m.login.dummy"}}
        assert raw_json(server.url, "POST", f"{API}/register", body)[0] == 200
        login_body = {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "hasher"}}
        statuses: list[int] = []
        start = threading.Barrier(21)

        def one_login() -> None:
            start.wait()
            statuses.append(raw_json(server.url, "POST", f"{API}/login", {**login_body, "password": "pw"})[0])

        threads = [threading.Thread(target=one_login) for _ in range(20)]
        for thread in threads:
            thread.start()
        probe = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        probe.request("GET", "/_matrix/client/versions")
        probe.getresponse().read()
        start.wait()
        began = time.monotonic()
        waits: list[float] = []
        while any(thread.is_alive() for thread in threads):
            sent = time.perf_counter()
            probe.request("GET", "/_matrix/client/versions")
            response = probe.getresponse()
            response.read()
            waits.append(time.perf_counter() - sent)
            assert response.status == 200
            time.sleep(0.01)
        took = time.monotonic() - began
        probe.close()
        assert statuses == [200] * 20
        # The request answers within 20 ms, asserted on the 95th percentile: on this shared
        # 2-core machine other processes alone delay the odd probe beyond it (the worst is
        # printed). Hashes on the hub fail it by far: every probe sent during one waits for
        # it (a hash of cost 10: ~90 ms of CPU); the earlier PBKDF2 on the hub made the
        # worst probe wait 378 ms.
        waits.sort()
        p95, worst = waits[int(len(waits) * 0.95) - 1], waits[-1]
        median = statistics.median(waits)
        figures = f"p95 {p95 * 1000:.1f} ms, worst {worst * 1000:.1f} ms, median {median * 1000:.1f} ms"
        print(f"{figures} over {len(waits)} probes while 20 logins took {took:.2f} s")
        assert p95 < 0.020, f"{figures} over {len(waits)} probes in {took:.2f} s"
        # ... and they ran while the logins did (20 bcrypt hashes of cost 10 take a while).
        assert took > 0.3 and len(waits) >= 10, (took, len(waits))
