"""An app for ``test_model_served.py``: the request/response model on real servers.

* ``GET/HEAD /_model/shared``: one module-level `json_response`, returned to
  every request by every thread and greenlet (the pipeline must never edit it);
* ``OPTIONS`` anywhere: the root `OptionsResource` (mixed in with the above);
* ``GET /_model/big``: a JSON object of 5 000 keys, built in reverse order, from
  a resource with ``canonical_json=False``: the keys must reach the client in
  the order given on every worker type (the gevent worker encodes big bodies
  incrementally);
* the whole `Site` wrapped Flask-style by a Werkzeug-style middleware that
  stamps ``X-Stamp`` on every response.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from synwsgi import (
    DirectServeJsonResource,
    JsonResource,
    RootOptionsRedirectResource,
    Site,
    SynapseRequest,
    json_response,
)

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

SHARED = json_response(200, {"shared": True, "padding": "x" * 200})
BIG_KEYS = 5000


class BigUnsorted(DirectServeJsonResource):
    canonical_json = False

    def on_GET(self, request: SynapseRequest) -> tuple[int, Any]:
        return 200, {f"k{i:05d}": i for i in reversed(range(BIG_KEYS))}


class Stamp:
    """A plain WSGI middleware, as a user wraps `site.wsgi_app` with."""

    def __init__(self, app: WSGIApplication) -> None:
        self.app = app

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        def stamped(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            return start_response(status, [*headers, ("X-Stamp", "wrapped")], exc_info)

        return self.app(environ, stamped)


def _build() -> Site:
    api = JsonResource()
    api.register_paths("GET", ["/_model/shared"], lambda request: SHARED, "Shared")
    root = RootOptionsRedirectResource("/_model/shared")
    site = Site({"/": root, "/_model": api, "/_model/big": BigUnsorted()})
    site.wsgi_app = Stamp(site.wsgi_app)  # type: ignore[method-assign]
    return site


app = _build()
