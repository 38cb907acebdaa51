"""Issue 10, section 4: `Ratelimiter`, Synapse's token bucket.

The arithmetic cases replay Synapse's tests/api/test_ratelimiting.py with
the same numbers; the request cases go through a real `JsonResource` and
the test `Client`.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from _helpers import assert_header_once, assert_json_error, assert_json_response, make_client

import synwsgi
from synwsgi import JsonResource, LimitExceededError, RestServlet, SynapseRequest
from synwsgi.auth import Auth, create_requester
from synwsgi.ratelimiting import Ratelimiter, RatelimitSettings
from synwsgi.rest import client_patterns


def limiter(per_second: float = 0.1, burst_count: int = 1, **kwargs: Any) -> Ratelimiter:
    return Ratelimiter(
        cfg=RatelimitSettings(key="rc_test", per_second=per_second, burst_count=burst_count), **kwargs
    )


class FakeClock:
    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def time(self) -> float:
        return self.now


# -- Synapse's cases -------------------------------------------------------------------------


def test_allowed_via_can_do_action() -> None:
    rl = limiter()
    assert rl.can_do_action(None, key="test_id", _time_now_s=0) == (True, 10.0)
    assert rl.can_do_action(None, key="test_id", _time_now_s=5) == (False, 10.0)
    assert rl.can_do_action(None, key="test_id", _time_now_s=10) == (True, 20.0)


def test_allowed_via_ratelimit() -> None:
    rl = limiter()
    rl.ratelimit(None, key="test_id", _time_now_s=0)
    with pytest.raises(LimitExceededError) as caught:
        rl.ratelimit(None, key="test_id", _time_now_s=5)
    assert caught.value.retry_after_ms == 5000
    assert caught.value.limiter_name == "rc_test"
    assert caught.value.pause == 0.5
    rl.ratelimit(None, key="test_id", _time_now_s=10)


def test_overriding_parameters_via_can_do_action() -> None:
    rl = limiter()
    assert rl.can_do_action(None, ("test_id",), _time_now_s=0) == (True, 10.0)
    assert rl.can_do_action(None, ("test_id",), _time_now_s=1) == (False, 10.0)
    assert rl.can_do_action(None, ("test_id",), _time_now_s=1, rate_hz=10.0) == (True, 1.1)
    assert rl.can_do_action(None, ("test_id",), _time_now_s=1, burst_count=10) == (True, 1.0)


def test_overriding_parameters_via_ratelimit() -> None:
    rl = limiter()
    rl.ratelimit(None, key=("test_id",), _time_now_s=0)
    with pytest.raises(LimitExceededError) as caught:
        rl.ratelimit(None, key=("test_id",), _time_now_s=1)
    assert caught.value.retry_after_ms == 9000
    rl.ratelimit(None, key=("test_id",), _time_now_s=1, rate_hz=10.0)
    rl.ratelimit(None, key=("test_id",), _time_now_s=1, burst_count=10)


def test_pruning() -> None:
    clock = FakeClock()
    rl = limiter(clock=clock)
    rl.can_do_action(None, key="test_id_1", _time_now_s=0)
    assert "test_id_1" in rl.actions
    clock.now = 60
    rl.can_do_action(None, key="test_id_2")  # using the limiter prunes what has emptied
    assert "test_id_1" not in rl.actions
    assert "test_id_2" in rl.actions


def test_pruning_record_action() -> None:
    rl = limiter()
    rl.record_action(None, key="test_id_1", n_actions=1, _time_now_s=0)
    assert "test_id_1" in rl.actions
    rl._prune_message_counts(_time_now_s=60)
    assert "test_id_1" not in rl.actions


class OverrideStore:
    class Override:
        messages_per_second = None
        burst_count = None

    def __init__(self) -> None:
        self.asked: list[str] = []

    def get_ratelimit_for_user(self, user_id: str) -> Any:
        self.asked.append(user_id)
        return self.Override() if user_id == "@user:test" else None


def test_db_user_override() -> None:
    store = OverrideStore()
    rl = limiter(store=store)
    requester = create_requester("@user:test")
    for _ in range(20):
        rl.ratelimit(requester, _time_now_s=0)
    other = create_requester("@other:test")
    rl.ratelimit(other, _time_now_s=0)
    with pytest.raises(LimitExceededError):
        rl.ratelimit(other, _time_now_s=0)
    assert store.asked[0] == "@user:test"


def test_multiple_actions() -> None:
    rl = limiter(burst_count=3)
    assert not rl.can_do_action(None, key="test_id", n_actions=4, _time_now_s=0).allowed
    assert rl.can_do_action(None, key="test_id", n_actions=3, _time_now_s=0) == (True, 10.0)
    assert rl.can_do_action(None, key="test_id", n_actions=1, _time_now_s=0) == (False, 10.0)
    assert rl.can_do_action(None, key="test_id", update=False, n_actions=1, _time_now_s=10) == (True, 20.0)
    assert rl.can_do_action(None, key="test_id", n_actions=2, _time_now_s=10) == (False, 10.0)
    assert rl.can_do_action(None, key="test_id", n_actions=2, _time_now_s=20) == (True, 30.0)


def test_rate_limit_burst_only_given_once() -> None:
    rl = limiter(burst_count=3)

    def consume_at(now: float) -> bool:
        return rl.can_do_action(requester=None, key="a", _time_now_s=now).allowed

    assert consume_at(0.0) and consume_at(0.1) and consume_at(0.2)
    assert consume_at(10.1)
    assert not consume_at(11.1)


def test_record_action_which_doesnt_fill_bucket() -> None:
    rl = limiter(burst_count=3)
    rl.record_action(requester=None, key="a", n_actions=2, _time_now_s=0.0)
    assert rl.can_do_action(requester=None, key="a", _time_now_s=0.0).allowed
    assert not rl.can_do_action(requester=None, key="a", _time_now_s=0.0).allowed


def test_record_action_which_fills_bucket() -> None:
    rl = limiter(burst_count=3)
    rl.record_action(requester=None, key="a", n_actions=3, _time_now_s=0.0)
    assert not rl.can_do_action(requester=None, key="a", _time_now_s=0.0).allowed
    assert rl.can_do_action(requester=None, key="a", _time_now_s=10.0).allowed
    assert not rl.can_do_action(requester=None, key="a", _time_now_s=10.0).allowed


def test_record_action_which_overfills_bucket() -> None:
    rl = limiter(burst_count=3)
    rl.record_action(requester=None, key="a", n_actions=4, _time_now_s=0.0)
    assert not rl.can_do_action(requester=None, key="a", _time_now_s=0.0).allowed
    assert not rl.can_do_action(requester=None, key="a", _time_now_s=10.0).allowed
    assert rl.can_do_action(requester=None, key="a", _time_now_s=20.0).allowed


# -- synwsgi specifics -----------------------------------------------------------------------


def test_requester_key_is_the_user_id() -> None:
    rl = limiter()
    alice = create_requester("@alice:hs", device_id="A")
    alice_again = create_requester("@alice:hs", device_id="B")
    assert rl.can_do_action(alice, _time_now_s=0).allowed
    assert not rl.can_do_action(alice_again, _time_now_s=0).allowed
    assert "@alice:hs" in rl.actions


def test_key_or_requester_required() -> None:
    with pytest.raises(ValueError):
        limiter().can_do_action(None)


def test_zero_rate_gives_minus_one_and_does_not_crash() -> None:
    rl = limiter(per_second=0, burst_count=2)
    assert rl.can_do_action(None, key="k", _time_now_s=0) == (True, -1.0)
    assert rl.can_do_action(None, key="k", _time_now_s=100) == (True, -1.0)
    assert not rl.can_do_action(None, key="k", _time_now_s=1000).allowed


def test_injectable_clock_is_used() -> None:
    clock = FakeClock(100.0)
    rl = limiter(clock=clock)
    assert rl.can_do_action(None, key="k") == (True, 110.0)
    clock.now = 105.0
    assert rl.can_do_action(None, key="k") == (False, 110.0)
    clock.now = 110.0
    assert rl.can_do_action(None, key="k").allowed


def test_settings_parse() -> None:
    config = {"rc_login": {"address": {"per_second": 0.5, "burst_count": 7}}}
    assert RatelimitSettings.parse(config, "rc_login.address") == RatelimitSettings(
        "rc_login.address", 0.5, 7
    )
    assert RatelimitSettings.parse({}, "rc_message") == RatelimitSettings("rc_message", 0.17, 3)


def test_thread_safe_under_contention() -> None:
    rl = limiter(per_second=1e-9, burst_count=100)
    allowed: list[bool] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def worker() -> None:
        start.wait()
        mine = [rl.can_do_action(None, key="shared").allowed for _ in range(200)]
        with lock:
            allowed.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(allowed) == 1600
    assert sum(allowed) == 100


# -- through a JsonResource ------------------------------------------------------------------


def build(clock: FakeClock) -> JsonResource:
    by_ip = Ratelimiter(clock=clock, cfg=RatelimitSettings("rc_login.address", per_second=0.5, burst_count=2))
    by_user = Ratelimiter(clock=clock, cfg=RatelimitSettings("rc_message", per_second=1.0, burst_count=1))
    auth = Auth({"t": create_requester("@alice:hs", device_id="D")}.get)

    class LoginServlet(RestServlet):
        PATTERNS = client_patterns("/login$")

        def on_POST(self, request: SynapseRequest) -> tuple[int, Any]:
            by_ip.ratelimit(None, key=(request.getClientAddress().host,))  # Synapse's spelling
            return 200, {"ok": True}

    class SendServlet(RestServlet):
        PATTERNS = client_patterns("/send$")

        async def on_PUT(self, request: SynapseRequest) -> tuple[int, Any]:
            requester = await auth.get_user_by_req(request)
            await by_user.ratelimit(requester)
            allowed, _ = await by_user.can_do_action(requester, update=False)
            return 200, {"next_allowed_now": allowed}

    resource = JsonResource()
    LoginServlet().register(resource)
    SendServlet().register(resource)
    return resource


def test_ratelimit_by_ip_gives_429_with_retry_after() -> None:
    clock = FakeClock(1000.0)
    client = make_client({"/": build(clock)})
    url = "/_matrix/client/v3/login"
    for _ in range(2):
        assert_json_response(client.post(url, environ_base={"REMOTE_ADDR": "10.0.0.1"}), 200)
    response = client.post(url, environ_base={"REMOTE_ADDR": "10.0.0.1"})
    body = assert_json_error(response, 429, "M_LIMIT_EXCEEDED", "Too Many Requests")
    assert body == {"errcode": "M_LIMIT_EXCEEDED", "error": "Too Many Requests", "retry_after_ms": 2000}
    assert_header_once(response, "Retry-After", "2")
    assert "rc_login" not in response.get_data(as_text=True)
    # another address has its own bucket; time refills this one
    assert_json_response(client.post(url, environ_base={"REMOTE_ADDR": "10.0.0.2"}), 200)
    clock.now += 2
    assert_json_response(client.post(url, environ_base={"REMOTE_ADDR": "10.0.0.1"}), 200)


def test_async_servlet_awaits_the_limiter() -> None:
    clock = FakeClock(50.0)
    client = make_client({"/": build(clock)})
    headers = {"Authorization": "Bearer t"}
    url = "/_matrix/client/v3/send"
    assert assert_json_response(client.put(url, headers=headers), 200) == {"next_allowed_now": False}
    assert_json_error(client.put(url, headers=headers), 429, "M_LIMIT_EXCEEDED")
    clock.now += 1
    assert_json_response(client.put(url, headers=headers), 200)


def test_exported_at_top_level() -> None:
    assert synwsgi.Ratelimiter is Ratelimiter
    assert synwsgi.RatelimitSettings is RatelimitSettings
