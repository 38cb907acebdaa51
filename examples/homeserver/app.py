"""The app factory: one `HomeServer` (config, store, notifier, handlers) and its `Site`.

``create_app(database=":memory:")`` builds a WSGI app; the module-level
``app`` is built from the environment for gunicorn:

* ``SYNWSGI_HS_DATABASE``: a SQLite file (default ``homeserver.db``) or a
  PostgreSQL DSN (``postgresql://...`` or ``host=... dbname=...``);
* ``SYNWSGI_HS_SERVER_NAME``: the ``:domain`` of user and room ids
  (default ``localhost``);
* ``SYNWSGI_HS_REGISTRATION``: ``0`` turns open registration off;
* ``SYNWSGI_HS_BCRYPT_ROUNDS``: the bcrypt cost of password hashes
  (default 12, Synapse's; 4..31; the tests use 4).

On PostgreSQL the notifier is relayed through ``LISTEN``/``NOTIFY``, so any
number of workers and hosts can share the database; on SQLite it stays
in-process, so serve SQLite with one (gevent) worker.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Gauge

from synwsgi import JsonResource, Notifier, Site
from synwsgi.accesslog import AccessLogger
from synwsgi.auth import Auth, Requester, create_requester
from synwsgi.metrics import MetricsResource
from synwsgi.notifier import PostgresNotifierRelay
from synwsgi.ratelimiting import Ratelimiter, RatelimitSettings
from synwsgi.transactions import HttpTransactionCache

from .passwords import DEFAULT_ROUNDS, PasswordHasher
from .rooms import RoomHandler, random_string
from .servlets import account, rooms, sync
from .store import Database, Store
from .sync import SyncHandler


def _rate(value: str) -> tuple[float, int]:
    per_second, _, burst = value.partition(",")
    return float(per_second), int(burst)


@dataclass(frozen=True)
class HomeServerConfig:
    server_name: str = "localhost"
    database: str = "homeserver.db"
    enable_registration: bool = True
    # (per second, burst) token buckets, as Synapse's rc_* settings. Logins and
    # registrations by client address; failed logins by account (Synapse's
    # values); messages by user.
    rc_login_address: tuple[float, int] = (5.0, 50)
    rc_login_failed: tuple[float, int] = (0.17, 3)
    rc_registration: tuple[float, int] = (5.0, 50)
    rc_message: tuple[float, int] = (50.0, 200)
    # bcrypt's cost (log2 of its rounds), as Synapse's `bcrypt_rounds`.
    bcrypt_rounds: int = DEFAULT_ROUNDS

    @classmethod
    def from_env(cls) -> HomeServerConfig:
        """`SYNWSGI_HS_*` variables; rates as `per_second,burst` (e.g. `SYNWSGI_HS_RC_MESSAGE=0.2,10`)."""
        env = os.environ
        rates = {
            field: _rate(env[f"SYNWSGI_HS_{field.upper()}"])
            for field in ("rc_login_address", "rc_login_failed", "rc_registration", "rc_message")
            if f"SYNWSGI_HS_{field.upper()}" in env
        }
        return cls(
            server_name=env.get("SYNWSGI_HS_SERVER_NAME", "localhost"),
            database=env.get("SYNWSGI_HS_DATABASE", "homeserver.db"),
            enable_registration=env.get("SYNWSGI_HS_REGISTRATION", "1") != "0",
            bcrypt_rounds=int(env.get("SYNWSGI_HS_BCRYPT_ROUNDS", DEFAULT_ROUNDS)),
            **rates,
        )


class HomeServer:
    """Everything a servlet needs, built once per app."""

    def __init__(self, config: HomeServerConfig) -> None:
        self.config = config
        self.db = Database(config.database)
        self.store = Store(self.db)
        relay = PostgresNotifierRelay(config.database) if self.db.postgres else None
        self.notifier = Notifier(relay)
        self.auth = Auth(self._requester_for_token)
        self.passwords = PasswordHasher(config.bcrypt_rounds)
        self.txns = HttpTransactionCache()
        self.rooms = RoomHandler(self.store, self.notifier, config.server_name)
        self.login_limiter = _limiter("rc_login.address", config.rc_login_address)
        self.failed_login_limiter = _limiter("rc_login.failed_attempts", config.rc_login_failed)
        self.registration_limiter = _limiter("rc_registration", config.rc_registration)
        self.message_limiter = _limiter("rc_message", config.rc_message)
        self.sync = SyncHandler(self.store, self.notifier)

    def _requester_for_token(self, token: str) -> Requester | None:
        found = self.store.get_user_by_access_token(token)
        if found is None:
            return None
        user_id, device_id, token_id = found
        return create_requester(user_id, access_token_id=token_id, device_id=device_id)

    def qualify(self, user: str) -> str:
        """`alice` or `@alice:server` -> `@alice:server`."""
        return user if user.startswith("@") else f"@{user}:{self.config.server_name}"

    def txn_prefix(self, requester: Requester) -> str:
        """Transaction ids are scoped to a device (the spec's rule since v1.7)."""
        return f"{requester.user_id}|{requester.device_id}|"

    def login_response(self, user_id: str, device_id: str | None) -> dict[str, Any]:
        device_id = device_id or random_string(10).upper()
        token = f"syt_{random_string(32)}"
        self.store.add_access_token(token, secrets.randbits(53), user_id, device_id)
        return {
            "user_id": user_id,
            "access_token": token,
            "device_id": device_id,
            "home_server": self.config.server_name,
        }

    def close(self) -> None:
        self.notifier.close()
        self.passwords.pool.close()
        self.db.close()


def _limiter(name: str, rate: tuple[float, int]) -> Ratelimiter:
    return Ratelimiter(cfg=RatelimitSettings(name, per_second=rate[0], burst_count=rate[1]))


def create_app(config: HomeServerConfig | None = None, **overrides: Any) -> Site:
    """The homeserver as a WSGI app; `overrides` replace config fields."""
    config = config or HomeServerConfig()
    if overrides:
        config = HomeServerConfig(**{**config.__dict__, **overrides})
    hs = HomeServer(config)
    client = JsonResource()
    account.VersionsServlet().register(client)
    for module in (account, rooms, sync):
        for servlet in module.SERVLETS:
            servlet(hs).register(client)
    # Synapse's gauge of parked long-polls, on Synapse's metrics path.
    registry = CollectorRegistry()
    listeners = Gauge("synapse_notifier_listeners", "Parked /sync long-polls", registry=registry)
    listeners.set_function(hs.notifier.count_waiters)
    site = Site(
        {"/_matrix/client": client, "/_synapse/metrics": MetricsResource(registry)},
        hooks=[AccessLogger()],
    )
    site.homeserver = hs  # type: ignore[attr-defined]
    return site


def _app_from_env() -> Site:
    return create_app(HomeServerConfig.from_env())


def __getattr__(name: str) -> Any:
    # Built on first access, so importing this module (tests, tools) opens no database.
    if name == "app":
        globals()["app"] = application = _app_from_env()
        return application
    raise AttributeError(name)
