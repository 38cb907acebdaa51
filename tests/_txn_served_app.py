"""A transactional endpoint for tests/test_transactions_served.py, served by real gunicorn workers.

`PUT /_matrix/client/v3/send/{txnId}` runs a send that takes half a second
through `HttpTransactionCache`; `GET /_matrix/client/v3/runs` says how many
sends really ran in this worker.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from typing import Any

from synwsgi import JsonResource, RestServlet, Site, SynapseRequest
from synwsgi.auth import Auth, create_requester
from synwsgi.rest import client_patterns
from synwsgi.transactions import HttpTransactionCache

SEND_SECONDS = 0.5

auth = Auth({"alice-token": create_requester("@alice:hs", device_id="PHONE")}.get)
txns = HttpTransactionCache()
_runs = itertools.count(1)
_lock = threading.Lock()
_ran: list[int] = []


class SendServlet(RestServlet):
    PATTERNS = client_patterns("/send/(?P<txn_id>[^/]*)$")

    def on_PUT(self, request: SynapseRequest, txn_id: str) -> Any:
        requester = auth.get_user_by_req(request)
        return txns.fetch_or_execute_request(request, requester, self._send, txn_id)

    def _send(self, txn_id: str) -> tuple[int, Any]:
        with _lock:
            run = next(_runs)
            _ran.append(run)
        time.sleep(SEND_SECONDS)  # monkey-patched under gevent: other greenlets run meanwhile
        return 200, {"event_id": f"${txn_id}-{run}", "pid": os.getpid()}


class RunsServlet(RestServlet):
    PATTERNS = client_patterns("/runs$")

    def on_GET(self, request: SynapseRequest) -> tuple[int, Any]:
        return 200, {"runs": len(_ran), "pid": os.getpid()}


resource = JsonResource()
SendServlet().register(resource)
RunsServlet().register(resource)
app = Site({"/": resource})
