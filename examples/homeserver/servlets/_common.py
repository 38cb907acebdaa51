"""The toolkit pieces every servlet uses, imported in one place."""

from __future__ import annotations

from synwsgi.auth import Requester as Requester
from synwsgi.rest import client_patterns as client_patterns
