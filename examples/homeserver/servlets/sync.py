"""`GET /sync`: the long-poll. `@cancellable`, so a client that leaves frees it at once."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from synwsgi import (
    Codes,
    RestServlet,
    SynapseError,
    SynapseRequest,
    cancellable,
    parse_boolean,
    parse_integer,
    parse_string,
)

from ..sync import SyncConfig, parse_token, timeline_limit_from_filter
from ._common import client_patterns

if TYPE_CHECKING:
    from ..app import HomeServer

# The longest a /sync may park, whatever the client asks (gunicorn's worker
# timeout does not apply to gevent workers; nginx's proxy_read_timeout must
# stay above this).
MAX_TIMEOUT_MS = 120_000


class SyncRestServlet(RestServlet):
    PATTERNS = client_patterns("/sync$")

    def __init__(self, hs: HomeServer) -> None:
        self.hs = hs

    @cancellable
    def on_GET(self, request: SynapseRequest) -> tuple[int, Any]:
        requester = self.hs.auth.get_user_by_req(request)
        timeout = parse_integer(request, "timeout", default=0)
        if timeout < 0:
            raise SynapseError(400, "timeout must be non-negative", Codes.INVALID_PARAM)
        since = parse_token(parse_string(request, "since"))
        full_state = parse_boolean(request, "full_state", default=False)
        filter_param = parse_string(request, "filter", encoding="utf-8")
        sync_filter: dict[str, Any] | None = None
        if filter_param is not None:
            if filter_param.startswith("{"):
                try:
                    sync_filter = json.loads(filter_param)
                except ValueError:
                    raise SynapseError(400, "filter is not valid JSON", Codes.NOT_JSON) from None
            elif filter_param.isdigit():
                sync_filter = self.hs.store.get_filter(requester.user_id, int(filter_param))
            if not isinstance(sync_filter, dict):
                raise SynapseError(400, "Invalid filter", Codes.INVALID_PARAM)
        config = SyncConfig(
            user_id=requester.user_id,
            txn_prefix=self.hs.txn_prefix(requester),
            timeline_limit=timeline_limit_from_filter(sync_filter),
            full_state=full_state,
        )
        with self.hs.long_poll():
            result = self.hs.sync.wait_for_sync_for_user(config, since, min(timeout, MAX_TIMEOUT_MS))
        return 200, result.to_json()


SERVLETS = (SyncRestServlet,)
