"""The showcase app with a 1 KiB request body limit, for ``test_limits.py``.

``wsgi.py`` does not read its limits from the environment, so this module
builds the same site with ``ServerConfig(max_request_body_size=1024)``.
"""

from __future__ import annotations

from synwsgi import ServerConfig
from wsgi import build_site

MAX_BODY = 1024

app = build_site(ServerConfig(max_request_body_size=MAX_BODY))
