"""The showcase app plus two endpoints, for ``test_pipeline_served.py``.

The showcase site (``wsgi.build_site``) is built with a 1 KiB body limit and a
half-second body read timeout, so a 413 and a 408 are cheap to provoke. Under
``/_pipeline`` a second `Site` (with the same access log hook) adds what the
showcase lacks:

* ``GET /_pipeline/not-modified``: an HTML resource raising
  ``RedirectException(url, 304)`` (a 304 must reach the client without a body);
* ``GET /_pipeline/whoami``: the worker's pid and the request's id, so a test
  can tie the ids in the access log to the workers that handed them out.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from synwsgi import (
    DirectServeHtmlResource,
    JsonResource,
    RedirectException,
    RestServlet,
    ServerConfig,
    Site,
    SynapseRequest,
)
from synwsgi.observability.accesslog import AccessLogger
from wsgi import build_site

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

MAX_BODY = 1024
BODY_READ_TIMEOUT = 0.5
PREFIX = "/_pipeline"

CONFIG = ServerConfig(max_request_body_size=MAX_BODY, body_read_timeout=BODY_READ_TIMEOUT)


class NotModifiedResource(DirectServeHtmlResource):
    def on_GET(self, request: SynapseRequest) -> str:
        raise RedirectException("/_matrix/static/", 304)


class WhoAmIServlet(RestServlet):
    PATTERNS = [f"{PREFIX}/whoami"]

    def on_GET(self, request: SynapseRequest) -> tuple[int, Any]:
        return 200, {"pid": os.getpid(), "request_id": request.request_id}


def _build_extra() -> Site:
    api = JsonResource()
    WhoAmIServlet().register(api)
    return Site(
        {PREFIX: api, f"{PREFIX}/not-modified": NotModifiedResource()},
        CONFIG,
        hooks=[AccessLogger(CONFIG.site_tag)],
    )


showcase = build_site(CONFIG)
extra = _build_extra()


def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    """``/_pipeline/...`` to the extra site, everything else to the showcase."""
    path: str = environ.get("PATH_INFO", "")
    site = extra if path == PREFIX or path.startswith(PREFIX + "/") else showcase
    return site(environ, start_response)
