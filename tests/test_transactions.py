"""Issue 10, section 4: `HttpTransactionCache`, the txn-id idempotency of Synapse.

Requests go through a real `JsonResource` and the test `Client`; the
concurrency tests run real threads (and, in a subprocess, real greenlets
under gevent's monkey-patching). Several cases translate Synapse's
tests/rest/client/test_transactions.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from _helpers import assert_json_error, assert_json_response, make_client
from werkzeug.test import Client, EnvironBuilder

import synwsgi
from synwsgi import CancelledError, JsonResource, RestServlet, SynapseError, SynapseRequest
from synwsgi.auth import Auth, Requester, create_requester
from synwsgi.rest import client_patterns
from synwsgi.transactions import CLEANUP_PERIOD_MS, HttpTransactionCache

PROJECT_ROOT = Path(__file__).resolve().parent.parent

REQUESTERS = {
    "alice-phone": create_requester("@alice:hs", device_id="PHONE", access_token_id=1),
    "alice-laptop": create_requester("@alice:hs", device_id="LAPTOP", access_token_id=2),
    "admin-minted": create_requester("@alice:hs", access_token_id=3),
    "guest": create_requester("@guest:hs", is_guest=True),
}


class FakeClock:
    """An injectable clock (ms), as Synapse's tests advance their reactor."""

    def __init__(self) -> None:
        self.now_ms = 1_000_000

    def time_msec(self) -> int:
        return self.now_ms

    def advance(self, seconds: float) -> None:
        self.now_ms += int(seconds * 1000)


class Sends:
    """What the servlet really did: one entry per executed send."""

    def __init__(self) -> None:
        self.executed: list[tuple[str, str, Any]] = []
        self.release = threading.Event()
        self.release.set()
        self.fail_next: BaseException | None = None
        self.lock = threading.Lock()


def build(cache: HttpTransactionCache, sends: Sends) -> JsonResource:
    auth = Auth(REQUESTERS.get)

    class SendServlet(RestServlet):
        PATTERNS = client_patterns("/rooms/(?P<room_id>[^/]*)/send/(?P<event_type>[^/]*)/(?P<txn_id>[^/]*)$")

        def on_PUT(self, request: SynapseRequest, room_id: str, event_type: str, txn_id: str) -> Any:
            requester = auth.get_user_by_req(request, allow_guest=True)
            content = synwsgi.parse_json_object_from_request(request)
            return cache.fetch_or_execute_request(request, requester, self._send, room_id, txn_id, content)

        def _send(self, room_id: str, txn_id: str, content: Any) -> tuple[int, Any]:
            sends.release.wait(10)
            with sends.lock:
                error, sends.fail_next = sends.fail_next, None
                if error is not None:
                    raise error
                sends.executed.append((room_id, txn_id, content))
                return 200, {"event_id": f"$event{len(sends.executed)}"}

    class AsyncSendServlet(RestServlet):
        """Synapse's style: `return await self.txns.fetch_or_execute_request(...)`."""

        PATTERNS = client_patterns("/async/(?P<txn_id>[^/]*)$")

        async def on_PUT(self, request: SynapseRequest, txn_id: str) -> tuple[int, Any]:
            requester = await auth.get_user_by_req(request)
            return await cache.fetch_or_execute_request(request, requester, self._send, txn_id)

        async def _send(self, txn_id: str) -> tuple[int, Any]:
            with sends.lock:
                sends.executed.append(("async", txn_id, None))
                return 200, {"event_id": f"$async{len(sends.executed)}"}

    resource = JsonResource()
    SendServlet().register(resource)
    AsyncSendServlet().register(resource)
    return resource


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sends() -> Sends:
    return Sends()


@pytest.fixture
def cache(clock: FakeClock) -> HttpTransactionCache:
    return HttpTransactionCache(clock=clock)


@pytest.fixture
def client(cache: HttpTransactionCache, sends: Sends) -> Client:
    return make_client({"/": build(cache, sends)})


def send(
    client: Client, token: str = "alice-phone", txn: str = "t1", room: str = "!r:hs", body: Any = None
) -> Any:
    return client.put(
        f"/_matrix/client/v3/rooms/{room}/send/m.room.message/{txn}",
        headers={"Authorization": f"Bearer {token}"},
        data=json.dumps(body if body is not None else {"body": "hi"}),
    )


def test_executes_and_returns_the_response(client: Client, sends: Sends) -> None:
    assert assert_json_response(send(client), 200) == {"event_id": "$event1"}
    assert sends.executed == [("!r:hs", "t1", {"body": "hi"})]


def test_retry_gets_the_first_response_without_running_again(client: Client, sends: Sends) -> None:
    # Synapse's test_deduplicates_based_on_key: later arguments are ignored.
    first = assert_json_response(send(client, body={"n": 0}), 200)
    for n in range(1, 3):
        assert assert_json_response(send(client, body={"n": n}), 200) == first
    assert sends.executed == [("!r:hs", "t1", {"n": 0})]


@pytest.mark.parametrize(
    "other",
    [
        {"txn": "t2"},
        {"room": "!other:hs"},
        {"token": "alice-laptop"},  # same user, another device
        {"token": "admin-minted"},  # no device: keyed by the access token
        {"token": "guest"},
    ],
)
def test_key_is_path_and_device_or_token(client: Client, sends: Sends, other: dict[str, str]) -> None:
    assert_json_response(send(client), 200)
    assert assert_json_response(send(client, **other), 200) == {"event_id": "$event2"}
    assert len(sends.executed) == 2


def test_same_device_new_token_is_the_same_transaction(client: Client, sends: Sends) -> None:
    REQUESTERS["alice-phone-relogin"] = create_requester("@alice:hs", device_id="PHONE", access_token_id=99)
    try:
        first = assert_json_response(send(client), 200)
        assert assert_json_response(send(client, token="alice-phone-relogin"), 200) == first
    finally:
        del REQUESTERS["alice-phone-relogin"]
    assert len(sends.executed) == 1


def test_failures_are_not_cached(client: Client, sends: Sends) -> None:
    # Synapse's test_does_not_cache_exceptions / _failures.
    sends.fail_next = SynapseError(429, "slow down", "M_LIMIT_EXCEEDED")
    assert_json_error(send(client), 429, "M_LIMIT_EXCEEDED")
    assert assert_json_response(send(client), 200) == {"event_id": "$event1"}
    assert assert_json_response(send(client), 200) == {"event_id": "$event1"}
    assert len(sends.executed) == 1


def test_expires_after_the_cleanup_period(client: Client, sends: Sends, clock: FakeClock) -> None:
    # Synapse's test_cleans_up.
    send(client)
    clock.advance(CLEANUP_PERIOD_MS / 1000 - 1)
    assert assert_json_response(send(client), 200) == {"event_id": "$event1"}
    clock.advance(2)
    assert assert_json_response(send(client), 200) == {"event_id": "$event2"}
    assert len(sends.executed) == 2


def test_sweep_drops_expired_entries(client: Client, cache: HttpTransactionCache, clock: FakeClock) -> None:
    send(client, txn="a")
    send(client, txn="b")
    assert len(cache.transactions) == 2
    clock.advance(CLEANUP_PERIOD_MS / 1000 + 1)
    send(client, txn="c")  # any use sweeps once a period
    assert len(cache.transactions) == 1


def test_async_handler_awaits_the_cache(client: Client, sends: Sends) -> None:
    url = "/_matrix/client/v3/async/x1"
    headers = {"Authorization": "Bearer alice-phone"}
    first = assert_json_response(client.put(url, headers=headers), 200)
    assert assert_json_response(client.put(url, headers=headers), 200) == first
    assert sends.executed == [("async", "x1", None)]


def test_requester_without_device_or_token_is_refused(cache: HttpTransactionCache) -> None:
    request = SynapseRequest(EnvironBuilder(path="/x", method="PUT").get_environ())
    with pytest.raises(ValueError):
        cache.fetch_or_execute_request(request, create_requester("@a:hs"), lambda: (200, {}))


def test_direct_call_passes_args_and_kwargs(cache: HttpTransactionCache) -> None:
    # Synapse's test_executes_given_function.
    request = SynapseRequest(EnvironBuilder(path="/foo/bar", method="PUT").get_environ())
    calls: list[tuple[Any, ...]] = []

    def cb(*args: Any, **kwargs: Any) -> tuple[int, Any]:
        calls.append((args, kwargs))
        return 200, {"result": "GOOD JOB!"}

    requester = REQUESTERS["admin-minted"]
    assert cache.fetch_or_execute_request(request, requester, cb, "some_arg", keyword="arg") == (
        200,
        {"result": "GOOD JOB!"},
    )
    assert calls == [(("some_arg",), {"keyword": "arg"})]


# -- concurrency -----------------------------------------------------------------------------


def _concurrent_sends(client: Client, sends: Sends, count: int) -> list[Any]:
    sends.release.clear()
    results: list[Any] = [None] * count
    started = threading.Barrier(count + 1)

    def worker(i: int) -> None:
        started.wait()
        response = send(client)
        results[i] = (response.status_code, response.get_json())

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    started.wait()
    time.sleep(0.3)  # every request is now in the cache (one running, the rest waiting)
    assert all(thread.is_alive() for thread in threads)  # nobody got an answer before the first
    sends.release.set()
    for thread in threads:
        thread.join(10)
    return results


def test_concurrent_retries_wait_for_the_first(client: Client, sends: Sends) -> None:
    results = _concurrent_sends(client, sends, 8)
    assert len(sends.executed) == 1
    assert results == [(200, {"event_id": "$event1"})] * 8


def test_concurrent_retries_get_the_first_failure(client: Client, sends: Sends) -> None:
    sends.fail_next = SynapseError(403, "not in room", "M_FORBIDDEN")
    results = _concurrent_sends(client, sends, 6)
    assert results == [(403, {"errcode": "M_FORBIDDEN", "error": "not in room"})] * 6
    assert sends.executed == []
    assert assert_json_response(send(client), 200) == {"event_id": "$event1"}  # not cached


def test_concurrent_waiters_get_the_same_exception_object(cache: HttpTransactionCache) -> None:
    request = SynapseRequest(EnvironBuilder(path="/p", method="PUT").get_environ())
    requester = REQUESTERS["alice-phone"]
    release = threading.Event()
    boom = RuntimeError("boom")
    caught: list[BaseException] = []

    def fn() -> tuple[int, Any]:
        release.wait(10)
        raise boom

    def worker() -> None:
        try:
            cache.fetch_or_execute_request(request, requester, fn)
        except RuntimeError as e:
            caught.append(e)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(0.2)
    release.set()
    for thread in threads:
        thread.join(10)
    assert len(caught) == 4
    assert all(e is boom for e in caught)


def test_cancelled_first_request_lets_a_waiter_run_it(cache: HttpTransactionCache) -> None:
    request = SynapseRequest(EnvironBuilder(path="/p", method="PUT").get_environ())
    requester = REQUESTERS["alice-phone"]
    release = threading.Event()
    runs: list[str] = []
    outcomes: dict[str, Any] = {}

    def fn(who: str) -> tuple[int, Any]:
        runs.append(who)
        if who == "first":
            release.wait(10)
            raise CancelledError()
        return 200, {"by": who}

    def worker(who: str) -> None:
        try:
            outcomes[who] = cache.fetch_or_execute_request(request, requester, fn, who)
        except CancelledError:
            outcomes[who] = "cancelled"

    first = threading.Thread(target=worker, args=("first",))
    first.start()
    time.sleep(0.1)
    second = threading.Thread(target=worker, args=("second",))
    second.start()
    time.sleep(0.1)
    release.set()
    first.join(10)
    second.join(10)
    assert runs == ["first", "second"]
    assert outcomes == {"first": "cancelled", "second": (200, {"by": "second"})}


GEVENT_SCRIPT = r"""
from gevent import monkey
monkey.patch_all()
import json, sys, time
import gevent
sys.path.insert(0, sys.argv[1])
from werkzeug.test import EnvironBuilder
from synwsgi import SynapseRequest
from synwsgi.auth import create_requester
from synwsgi.transactions import HttpTransactionCache

cache = HttpTransactionCache()
request = SynapseRequest(EnvironBuilder(path="/send/t1", method="PUT").get_environ())
requester = create_requester("@a:hs", device_id="D")
runs = []
ticks = []

def fn():
    runs.append(1)
    gevent.sleep(0.3)
    return 200, {"n": len(runs)}

def ticker():
    end = time.monotonic() + 0.5
    while time.monotonic() < end:
        ticks.append(1)
        gevent.sleep(0.01)

tick = gevent.spawn(ticker)
greenlets = [gevent.spawn(cache.fetch_or_execute_request, request, requester, fn) for _ in range(20)]
gevent.joinall(greenlets, timeout=5)
tick.join()
print(json.dumps({"runs": len(runs), "results": [g.value for g in greenlets], "ticks": len(ticks)}))
"""


def test_gevent_greenlets_wait_without_blocking_the_hub() -> None:
    out = subprocess.run(
        [sys.executable, "-c", GEVENT_SCRIPT, str(PROJECT_ROOT)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    report = json.loads(out.stdout)
    assert report["runs"] == 1
    assert report["results"] == [[200, {"n": 1}]] * 20
    assert report["ticks"] >= 20  # the hub kept running other greenlets while they waited


def test_exported_at_top_level() -> None:
    assert synwsgi.HttpTransactionCache is HttpTransactionCache
    assert isinstance(REQUESTERS["guest"], Requester)
