"""The app factory: one `HomeServer` (config, store, notifier, handlers) and its two sites.

``HomeServer(config)`` builds everything once; its servlets are made with
the homeserver, as Synapse's are (``servlet(hs).register(resource)``), so a
handler reaches it as ``self.hs``. It serves two `Site` objects, as
Synapse serves two listeners:

* ``client_site``: the Client-Server API (``/_matrix/client``) and
  ``/.well-known/matrix/client``, CORS preflights answered on every path,
  with the access log and a `ServerMetrics` hook that counts every request;
* ``metrics_site``: ``/_synapse/metrics`` only (what `ServerMetrics` counted,
  and the number of parked ``/sync`` long-polls), for a listener of its own,
  never the client port: metrics name servlets and rates that a client has
  no business reading.

``create_app(database=":memory:")`` returns the client site (tests); the
module-level ``app`` is built from the environment for gunicorn, and sends
each request to the site of the listener it came in on (`ListenerDispatch`).

Environment (all optional):

* ``SYNWSGI_HS_DATABASE``: a SQLite file or a PostgreSQL DSN
  (``postgresql://...`` or ``host=... dbname=...``); default
  ``homeserver.db`` in the state directory;
* ``SYNWSGI_HS_STATE_DIR``: the state directory (made, mode 0700, if
  missing); default systemd's ``$STATE_DIRECTORY`` (set by the unit's
  ``StateDirectory=``), else ``$XDG_STATE_HOME/synwsgi-homeserver``, else
  ``~/.local/state/synwsgi-homeserver``: never the working directory;
* ``SYNWSGI_HS_SERVER_NAME``: the ``:domain`` of user and room ids
  (default ``localhost``);
* ``SYNWSGI_HS_PUBLIC_BASEURL``: the URL clients reach the server at, for
  ``/.well-known/matrix/client`` (default ``http://<server_name>:8008``);
* ``SYNWSGI_HS_REGISTRATION``: ``0`` turns open registration off;
* ``SYNWSGI_HS_BCRYPT_ROUNDS``: the bcrypt cost of password hashes
  (default 12, Synapse's; 4..31; the tests use 4);
* ``SYNWSGI_HS_BEHIND_PROXY``: ``1`` trusts one reverse proxy's
  ``X-Forwarded-For``/``-Proto`` (the rate limits then key on the client's
  address that the proxy saw);
* ``SYNWSGI_HS_METRICS_BIND``: ``host:port`` of the metrics listener
  (default ``127.0.0.1:9009``; empty: no metrics listener); the example's
  gunicorn.conf.py binds it beside ``SYNWSGI_BIND``;
* ``SYNWSGI_HS_RC_LOGIN_ADDRESS``, ``_RC_LOGIN_FAILED``,
  ``_RC_REGISTRATION``, ``_RC_MESSAGE``: rate limits, ``per_second,burst``.

On PostgreSQL the notifier is relayed through ``LISTEN``/``NOTIFY``, so any
number of workers and hosts can share the database; on SQLite it stays
in-process, so serve SQLite with one (gevent) worker.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.multiprocess import MultiProcessCollector

from synwsgi import JsonResource, Notifier, OptionsResource, ServerConfig, Site
from synwsgi.auth import Auth, Requester, create_requester
from synwsgi.notifier import PostgresNotifierRelay
from synwsgi.observability.accesslog import AccessLogger
from synwsgi.observability.metrics import MetricsResource, ServerMetrics
from synwsgi.ratelimiting import Ratelimiter, RatelimitSettings
from synwsgi.transactions import HttpTransactionCache

from .passwords import DEFAULT_ROUNDS, PasswordHasher
from .rooms import RoomHandler, now_ms, random_string
from .servlets import account, devices, directory, rooms, sync, wellknown
from .store import Database, Store
from .sync import SyncHandler

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

DATABASE_FILE = "homeserver.db"
DEFAULT_METRICS_BIND = "127.0.0.1:9009"


def _rate(value: str) -> tuple[float, int]:
    per_second, _, burst = value.partition(",")
    return float(per_second), int(burst)


def default_state_dir(env: dict[str, str] | None = None) -> Path:
    """Where the homeserver keeps its database when nothing names it (see the module docstring)."""
    env = dict(os.environ) if env is None else env
    if env.get("SYNWSGI_HS_STATE_DIR"):
        return Path(env["SYNWSGI_HS_STATE_DIR"])
    if env.get("STATE_DIRECTORY"):
        # systemd: StateDirectory= may list several, separated by ':'.
        return Path(env["STATE_DIRECTORY"].split(":")[0])
    base = Path(env["XDG_STATE_HOME"]) if env.get("XDG_STATE_HOME") else Path.home() / ".local" / "state"
    return base / "synwsgi-homeserver"


@dataclass(frozen=True)
class HomeServerConfig:
    server_name: str = "localhost"
    # A SQLite path, ":memory:" or a PostgreSQL DSN; None: DATABASE_FILE in `state_dir`.
    database: str | None = None
    # None: `default_state_dir()`.
    state_dir: str | None = None
    public_baseurl: str | None = None
    enable_registration: bool = True
    behind_proxy: bool = False
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
            database=env.get("SYNWSGI_HS_DATABASE") or None,
            state_dir=env.get("SYNWSGI_HS_STATE_DIR") or None,
            public_baseurl=env.get("SYNWSGI_HS_PUBLIC_BASEURL") or None,
            enable_registration=env.get("SYNWSGI_HS_REGISTRATION", "1") != "0",
            behind_proxy=env.get("SYNWSGI_HS_BEHIND_PROXY", "0") == "1",
            bcrypt_rounds=int(env.get("SYNWSGI_HS_BCRYPT_ROUNDS", DEFAULT_ROUNDS)),
            **rates,
        )

    def database_location(self) -> str:
        """The database to open; the state directory is made when the database lives there."""
        if self.database is not None:
            return self.database
        state_dir = Path(self.state_dir) if self.state_dir else default_state_dir()
        state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        return str(state_dir / DATABASE_FILE)


class HomeServer:
    """Everything a servlet needs, built once per app; `client_site` and `metrics_site` serve it."""

    def __init__(self, config: HomeServerConfig) -> None:
        self.config = config
        self.database = config.database_location()
        self.db = Database(self.database)
        self.store = Store(self.db)
        relay = PostgresNotifierRelay(self.database) if self.db.postgres else None
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
        # One registry per homeserver: two in one process (tests) do not collide.
        self.metrics_registry = CollectorRegistry()
        self.metrics = ServerMetrics(registry=self.metrics_registry, tag="client")
        # Synapse's gauge of parked long-polls, on Synapse's metrics path.
        self.parked_polls = Gauge(
            "synapse_notifier_listeners",
            "Parked /sync long-polls",
            registry=self.metrics_registry,
            multiprocess_mode="livesum",
        )
        served = self.metrics_registry
        if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
            # Several workers (gunicorn.conf.py): each writes its numbers to that
            # directory and a scrape, whichever worker answers it, adds them up.
            # The gauge is then moved by the /sync servlet (`long_poll`): a
            # function of one worker's notifier would show that worker only.
            served = CollectorRegistry()
            MultiProcessCollector(served)  # type: ignore[no-untyped-call]
            self.multiprocess_metrics = True
        else:
            self.parked_polls.set_function(self.notifier.count_waiters)
            self.multiprocess_metrics = False
        self.client_site = Site(
            {
                # As Synapse's root resource: a CORS preflight (OPTIONS) on any path
                # gets its answer, so browser clients can call the API.
                "/": OptionsResource(),
                "/_matrix/client": self._client_resource(),
                "/.well-known/matrix": wellknown.resource(self),
            },
            config=ServerConfig(behind_proxy=config.behind_proxy),
            hooks=[AccessLogger(), self.metrics],
        )
        self.metrics_site = Site({"/_synapse/metrics": MetricsResource(served)})

    @contextlib.contextmanager
    def long_poll(self) -> Iterator[None]:
        """Around a /sync: counted in the parked-polls gauge when several workers share
        the metrics (then the gauge counts syncs in progress, parked or answering; with
        one worker it reads the notifier's parked waiters themselves)."""
        if not self.multiprocess_metrics:
            yield
            return
        self.parked_polls.inc()
        try:
            yield
        finally:
            self.parked_polls.dec()

    def _client_resource(self) -> JsonResource:
        client = JsonResource()
        account.VersionsServlet().register(client)
        for module in (account, devices, directory, rooms, sync):
            for servlet in module.SERVLETS:
                servlet(self).register(client)
        return client

    def _requester_for_token(self, token: str) -> Requester | None:
        found = self.store.get_user_by_access_token(token)
        if found is None:
            return None
        user_id, device_id, token_id = found
        return create_requester(user_id, access_token_id=token_id, device_id=device_id)

    @property
    def public_baseurl(self) -> str:
        return self.config.public_baseurl or f"http://{self.config.server_name}:8008"

    def qualify(self, user: str) -> str:
        """`alice` or `@alice:server` -> `@alice:server`."""
        return user if user.startswith("@") else f"@{user}:{self.config.server_name}"

    def txn_prefix(self, requester: Requester) -> str:
        """Transaction ids are scoped to a device (the spec's rule since v1.7)."""
        return f"{requester.user_id}|{requester.device_id}|"

    def login_response(
        self, user_id: str, device_id: str | None, display_name: str | None = None, ip: str | None = None
    ) -> dict[str, Any]:
        device_id = device_id or random_string(10).upper()
        token = f"syt_{random_string(32)}"
        self.store.add_access_token(
            token, secrets.randbits(53), user_id, device_id, display_name, now_ms(), ip
        )
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


class ListenerDispatch:
    """A WSGI app that serves each listener's own site, told by the port the request came in on.

    gunicorn sets ``SERVER_PORT`` from the listening socket's own address
    (not from the Host header) for TCP listeners, so a client cannot reach
    the metrics site through the client port by naming another port.
    """

    def __init__(self, default: WSGIApplication, by_port: dict[int, WSGIApplication]) -> None:
        self.default = default
        self.by_port = {str(port): app for port, app in by_port.items()}

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        app = self.by_port.get(environ.get("SERVER_PORT", ""), self.default)
        return app(environ, start_response)


def metrics_port(bind: str | None = None) -> int | None:
    """The metrics listener's port, from ``SYNWSGI_HS_METRICS_BIND`` (None: no metrics listener)."""
    bind = os.environ.get("SYNWSGI_HS_METRICS_BIND", DEFAULT_METRICS_BIND) if bind is None else bind
    if not bind:
        return None
    _, _, port = bind.rpartition(":")
    return int(port)


def create_app(config: HomeServerConfig | None = None, **overrides: Any) -> Site:
    """The Client-Server API as a WSGI app; `overrides` replace config fields."""
    config = replace(config or HomeServerConfig(), **overrides)
    hs = HomeServer(config)
    # Tests reach the homeserver (its store, its close()) from the app they drive.
    hs.client_site.homeserver = hs  # type: ignore[attr-defined]
    return hs.client_site


def _app_from_env() -> ListenerDispatch:
    hs = HomeServer(HomeServerConfig.from_env())
    port = metrics_port()
    return ListenerDispatch(hs.client_site, {port: hs.metrics_site} if port is not None else {})


def __getattr__(name: str) -> Any:
    # Built on first access, so importing this module (tests, tools) opens no database.
    if name == "app":
        globals()["app"] = application = _app_from_env()
        return application
    raise AttributeError(name)
