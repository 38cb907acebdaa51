"""`Ratelimiter`: Synapse's per-key token bucket, in-process and thread-safe.

Each key (a user id by default, or anything hashable: an IP address, a
`(room_id, user_id)` pair) has a bucket that holds up to `burst_count`
actions and leaks `per_second` of them per second. An action is allowed if
it fits in the bucket; refused actions are not counted. `ratelimit` raises
`LimitExceededError(limiter_name=..., retry_after_ms=...)`, a 429 with
`Retry-After`::

    login_limiter = Ratelimiter(cfg=RatelimitSettings("rc_login", per_second=0.17, burst_count=3))

    def on_POST(self, request):
        login_limiter.ratelimit(None, key=(request.getClientAddress().host,))   # by IP
        ...
        requester = auth.get_user_by_req(request)
        message_limiter.ratelimit(requester)                     # by user id

The arithmetic is Synapse's (`synapse/api/ratelimiting.py`), so the same
calls give the same answers; the tests replay Synapse's own. Differences:
the buckets live in this process (each gunicorn worker limits on its own,
as each Synapse worker does); the calls are synchronous but their results
may be awaited, so ported `await limiter.ratelimit(...)` lines stay as they
are; a `store`, if given, is only asked `get_ratelimit_for_user` (Synapse's
"no limit for this user" override), and the error's `pause` is carried, not
slept: synwsgi answers the 429 at once.
"""

from __future__ import annotations

import threading
from collections.abc import Generator, Hashable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from .clock import MonotonicClock, resolve
from .errors import LimitExceededError
from .request import current_request

#: How often (clock seconds) buckets that have emptied are dropped.
PRUNE_INTERVAL_S = 15.0


class RatelimitClock(Protocol):
    """What the limiter needs of a clock: seconds (Synapse's `Clock.time`)."""

    def time(self) -> float: ...


@dataclass(frozen=True, slots=True)
class RatelimitSettings:
    """One limiter's configuration: its name, leak rate and bucket size."""

    key: str
    per_second: float
    burst_count: int

    @classmethod
    def parse(
        cls, config: Mapping[str, Any], key: str, defaults: Mapping[str, float] | None = None
    ) -> RatelimitSettings:
        """Read `config[key]` (dots for nesting: `"rc_login.address"`), with Synapse's defaults."""
        defaults = defaults or {"per_second": 0.17, "burst_count": 3.0}
        section: Any = config
        for part in key.split("."):
            section = section.get(part, {}) if isinstance(section, Mapping) else {}
        return cls(
            key=key,
            per_second=float(section.get("per_second", defaults["per_second"])),
            burst_count=int(section.get("burst_count", defaults["burst_count"])),
        )


class ActionCheck(NamedTuple):
    """`can_do_action`'s answer: allowed now, and when the next action is (clock seconds).

    May be awaited (it gives itself back), for ported `await limiter.can_do_action(...)`.
    """

    allowed: bool
    time_allowed: float

    def __await__(self) -> Generator[Any, None, ActionCheck]:
        return self
        yield  # pragma: no cover (makes this a generator)


class Allowed:
    """`ratelimit`'s result when the action is allowed; awaiting it gives None."""

    __slots__ = ()

    def __await__(self) -> Generator[Any, None, None]:
        return None
        yield  # pragma: no cover (makes this a generator)


_ALLOWED = Allowed()


class Ratelimiter:
    """Rate-limits actions by key; see the module docstring.

    `store` and `clock` come first, as in Synapse's constructor; both are
    optional here (`clock` defaults to a monotonic one; pass your own in
    tests). `cfg` is required.
    """

    def __init__(
        self,
        store: Any = None,
        clock: RatelimitClock | None = None,
        cfg: RatelimitSettings | None = None,
        ratelimit_callbacks: Any = None,
    ) -> None:
        if cfg is None:
            raise TypeError("Ratelimiter needs cfg=RatelimitSettings(key, per_second, burst_count)")
        self.store = store
        self.clock: RatelimitClock = clock or MonotonicClock()
        self.rate_hz = cfg.per_second
        self.burst_count = cfg.burst_count
        self._limiter_name = cfg.key
        self._ratelimit_callbacks = ratelimit_callbacks
        #: key -> (actions in the bucket, when it was last empty, its leak rate)
        self.actions: dict[Hashable, tuple[float, float, float]] = {}
        self._lock = threading.Lock()
        self._last_prune_s = self.clock.time()

    def _get_key(self, requester: Any, key: Hashable | None) -> Hashable:
        if key is not None:
            return key
        if not requester:
            raise ValueError("Must supply at least one of `requester` or `key`")
        return str(requester.user)

    def _exempt(self, requester: Any) -> bool:
        """Synapse's per-user override: a row with no message rate means "not limited"."""
        get_override = getattr(self.store, "get_ratelimit_for_user", None)
        if requester is None or get_override is None:
            return False
        entity = getattr(requester, "authenticated_entity", None) or str(requester.user)
        override = _resolve_override(get_override(entity))
        return bool(override) and not getattr(override, "messages_per_second", None)

    def can_do_action(
        self,
        requester: Any,
        key: Hashable | None = None,
        rate_hz: float | None = None,
        burst_count: int | None = None,
        update: bool = True,
        n_actions: int = 1,
        _time_now_s: float | None = None,
    ) -> ActionCheck:
        """Whether `n_actions` fit in the bucket now, and when the next one will.

        With `update`, allowed actions are counted. `rate_hz`/`burst_count`
        override the limiter's for this call. `time_allowed` is -1 when the
        rate is 0 or less (Synapse's convention), and never in the past.
        """
        key = self._get_key(requester, key)
        if self._exempt(requester):
            return ActionCheck(True, -1.0)
        if requester and self._ratelimit_callbacks is not None:
            override = _resolve_override(
                self._ratelimit_callbacks.get_ratelimit_override_for_user(
                    str(requester.user), self._limiter_name
                )
            )
            if override:
                rate_hz, burst_count = override.per_second, override.burst_count
        now = _time_now_s if _time_now_s is not None else self.clock.time()
        rate = rate_hz if rate_hz is not None else self.rate_hz
        burst = burst_count if burst_count is not None else self.burst_count
        with self._lock:
            self._maybe_prune(now)
            action_count, time_start, _ = self.actions.get(key, (0, now, rate))
            performed = action_count - (now - time_start) * rate
            if performed < 0:
                # The bucket has emptied: forget what it held.
                performed, action_count, time_start = 0, 0, now
            # Written as Synapse does, so float rounding decides the same way.
            allowed = not performed > burst - n_actions
            if allowed:
                action_count += n_actions
                if update:
                    self._record_locked(key, action_count, time_start, rate, now)
        # -1 without a leak rate, as in Synapse; never a time in the past.
        time_allowed = max(time_start + (action_count - burst + 1) / rate, now) if rate > 0 else -1.0
        return ActionCheck(allowed, time_allowed)

    def record_action(
        self,
        requester: Any,
        key: Hashable | None = None,
        n_actions: int = 1,
        _time_now_s: float | None = None,
    ) -> None:
        """Count `n_actions` even beyond the limit (negative to refund)."""
        key = self._get_key(requester, key)
        now = _time_now_s if _time_now_s is not None else self.clock.time()
        with self._lock:
            action_count, time_start, rate = self.actions.get(key, (0, now, self.rate_hz))
            self._record_locked(key, action_count + n_actions, time_start, rate, now)

    def ratelimit(
        self,
        requester: Any,
        key: Hashable | None = None,
        rate_hz: float | None = None,
        burst_count: int | None = None,
        update: bool = True,
        n_actions: int = 1,
        _time_now_s: float | None = None,
        pause: float | None = 0.5,
    ) -> Allowed:
        """`can_do_action`, raising `LimitExceededError` (429) when the action is refused.

        The error carries this limiter's name (logged, never sent), the
        milliseconds until the action would be allowed, and `pause`.
        """
        now = _time_now_s if _time_now_s is not None else self.clock.time()
        allowed, time_allowed = self.can_do_action(
            requester,
            key,
            rate_hz=rate_hz,
            burst_count=burst_count,
            update=update,
            n_actions=n_actions,
            _time_now_s=now,
        )
        if not allowed:
            raise LimitExceededError(
                limiter_name=self._limiter_name,
                retry_after_ms=int(1000 * (time_allowed - now)),
                pause=pause,
            )
        return _ALLOWED

    def _record_locked(
        self, key: Hashable, action_count: float, time_start: float, rate: float, now: float
    ) -> None:
        if rate > 0 and time_start + action_count / rate <= now:
            self.actions.pop(key, None)  # already empty again
        else:
            self.actions[key] = (action_count, time_start, rate)

    def _maybe_prune(self, now: float) -> None:
        if now - self._last_prune_s >= PRUNE_INTERVAL_S:
            self._prune_locked(now)

    def _prune_locked(self, now: float) -> None:
        self._last_prune_s = now
        empty = [
            key
            for key, (count, start, rate) in self.actions.items()
            if rate > 0 and count - (now - start) * rate <= 0
        ]
        for key in empty:
            del self.actions[key]

    def _prune_message_counts(self, _time_now_s: float | None = None) -> None:
        """Drop every bucket that has emptied (Synapse's periodic job; here also done on use)."""
        now = _time_now_s if _time_now_s is not None else self.clock.time()
        with self._lock:
            self._prune_locked(now)


def _resolve_override(value: Any) -> Any:
    """An override lookup's answer, awaited by the current request's driver if it is awaitable."""
    request = current_request()
    return resolve(value, request.config.async_driver if request is not None else None)
