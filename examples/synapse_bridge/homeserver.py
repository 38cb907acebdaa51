"""Build a real `SynapseHomeServer` (SQLite) and register `ClientRestResource`'s servlets.

This module imports Synapse (AGPL-3.0) at run time, as any application using
it does; synwsgi's bridge itself never imports it. Everything here runs in the
reactor's thread (`ReactorThread.call`): Synapse's objects schedule work on the
reactor as they are built, which only that thread may do.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from synwsgi import JsonResource
from synwsgi.request import SynapseRequest


def write_config(directory: Path, server_name: str = "localhost") -> Path:
    """A minimal homeserver.yaml in `directory`: SQLite, open registration, no listeners
    (gunicorn listens), no federation key servers; the signing key is generated on load."""
    directory.mkdir(parents=True, exist_ok=True)
    config = {
        "server_name": server_name,
        "pid_file": str(directory / "homeserver.pid"),
        "report_stats": False,
        "listeners": [],
        "database": {"name": "sqlite3", "args": {"database": str(directory / "homeserver.db")}},
        "media_store_path": str(directory / "media"),
        "signing_key_path": str(directory / f"{server_name}.signing.key"),
        "trusted_key_servers": [],
        "suppress_key_server_warning": True,
        "macaroon_secret_key": secrets.token_urlsafe(32),
        "form_secret": secrets.token_urlsafe(32),
        "enable_registration": True,
        "enable_registration_without_verification": True,
        # A test drives many requests from one address in a few seconds.
        "rc_message": {"per_second": 1000, "burst_count": 1000},
        "rc_registration": {"per_second": 1000, "burst_count": 1000},
        "rc_login": {
            "address": {"per_second": 1000, "burst_count": 1000},
            "account": {"per_second": 1000, "burst_count": 1000},
            "failed_attempts": {"per_second": 1000, "burst_count": 1000},
        },
    }
    path = directory / "homeserver.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def load_config(path: Path) -> Any:
    """Synapse's `HomeServerConfig` from `path`, generating the missing signing key."""
    from synapse.config.homeserver import HomeServerConfig

    config_dict = yaml.safe_load(path.read_text(encoding="utf-8"))
    directory = str(path.parent)
    config = HomeServerConfig()
    config.generate_missing_files(config_dict, directory)
    config.parse_config_dict(config_dict, config_dir_path=directory, data_dir_path=directory)
    return config


def build(config_path: Path, ported: JsonResource | None = None) -> tuple[Any, JsonResource]:
    """The homeserver and a `JsonResource` holding every client servlet of `ClientRestResource`.

    Call in the reactor's thread. When `ported` is given, its routes come
    first: a servlet ported to synwsgi answers its URL, Synapse's the rest.
    """
    from synapse.app.homeserver import SynapseHomeServer
    from synapse.rest import ClientRestResource

    config = load_config(config_path)
    hs = SynapseHomeServer(config.server.server_name, config=config)
    hs.setup()
    resource = ported if ported is not None else JsonResource()
    ClientRestResource.register_servlets(resource, hs)
    return hs, resource


def request_starter(hs: Any) -> Any:
    """A `DeferredDriver` `start`: each servlet coroutine runs in a Synapse `LoggingContext`
    for its request, started the way Synapse's logcontext rules ask (`run_in_background`
    restores the caller's context and fires the result in the sentinel context)."""
    from synapse.logging.context import (
        ContextRequest,
        LoggingContext,
        PreserveLoggingContext,
        run_in_background,
    )

    def start(request: SynapseRequest | None, awaitable: Callable[[], Any]) -> Any:
        if request is None:
            return run_in_background(awaitable)
        logcontext = LoggingContext(
            name=request.request_id,
            server_name=hs.hostname,
            request=ContextRequest(
                request_id=request.request_id,
                ip_address=request.environ.get("REMOTE_ADDR", ""),
                site_tag=request.config.site_tag,
                requester=None,
                authenticated_entity=None,
                method=str(request.method),
                url=request.get_redacted_uri(),
                protocol=str(request.environ.get("SERVER_PROTOCOL", "")),
                user_agent=request.get_user_agent(""),
            ),
        )
        with PreserveLoggingContext(logcontext):
            return run_in_background(awaitable)

    return start


def default_config_path() -> Path:
    """`$SYNWSGI_SYNAPSE_CONFIG`, or a config written into `./synapse-data` on first use."""
    configured = os.environ.get("SYNWSGI_SYNAPSE_CONFIG")
    if configured:
        return Path(configured)
    path = Path("synapse-data") / "homeserver.yaml"
    return path if path.exists() else write_config(path.parent)
