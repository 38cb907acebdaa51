"""`GET /.well-known/matrix/client`: where clients find the server from its name."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from synwsgi import JsonResource, RestServlet, SynapseRequest

if TYPE_CHECKING:
    from ..app import HomeServer


class WellKnownClientServlet(RestServlet):
    """The spec's discovery document: the base URL from `public_baseurl`."""

    PATTERNS = [re.compile("^/.well-known/matrix/client$")]

    def __init__(self, hs: HomeServer) -> None:
        self.hs = hs

    def on_GET(self, request: SynapseRequest) -> tuple[int, Any]:
        return 200, {"m.homeserver": {"base_url": self.hs.public_baseurl}}


def resource(hs: HomeServer) -> JsonResource:
    """The resource mounted at ``/.well-known/matrix``."""
    well_known = JsonResource()
    WellKnownClientServlet(hs).register(well_known)
    return well_known
