"""The showcase app (``wsgi:app``) with the toolkit's logging configured.

gunicorn (with the harness's empty config) and the dev server bootstrap do
not configure Python logging, so synwsgi's INFO records, among them the
"Processed request" access line, would be dropped. This module applies
``synwsgi.observability.logcontext.logging_config("INFO")`` (what the project's
``gunicorn.conf.py`` does) and serves the unchanged showcase app.
"""

from __future__ import annotations

import logging.config

from synwsgi.observability.logcontext import logging_config

logging.config.dictConfig(logging_config("INFO"))

from wsgi import app  # noqa: E402

__all__ = ["app"]
