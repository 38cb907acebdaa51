"""Werkzeug's development server, with two fixes, for `python wsgi.py`.

Werkzeug's handler speaks HTTP/1.1 to every client, so a streamed body goes
out chunked even to an HTTP/1.0 client, which cannot read chunked encoding.
Answering an HTTP/1.0 request in HTTP/1.0 makes such a body close-delimited,
as gunicorn does. (The dev server closes every connection anyway.) Two
`Content-Length` headers reach the application as both values, so it refuses
them with a 400 as under gunicorn (Werkzeug would pass on the first). And
its own access line, which would print `access_token` values, is left to
synwsgi's access log, which `run_dev_server` makes visible: a program that
has configured no logging gets `logging_config()`, as `gunicorn.conf.py`
installs it (else the access lines, at INFO, would go nowhere).
"""

from __future__ import annotations

import logging
import logging.config
from typing import TYPE_CHECKING, Any

from werkzeug.serving import WSGIRequestHandler, run_simple

from .observability.logcontext import logging_config

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication


class DevRequestHandler(WSGIRequestHandler):
    """`WSGIRequestHandler` answering in the client's HTTP version (1.0 or 1.1)."""

    def run_wsgi(self) -> None:
        if self.request_version == "HTTP/1.0":
            self.protocol_version = "HTTP/1.0"
        super().run_wsgi()

    def make_environ(self) -> dict[str, Any]:
        environ = super().make_environ()
        lengths = self.headers.get_all("Content-Length") or []
        if len(lengths) > 1:
            environ["CONTENT_LENGTH"] = ", ".join(lengths)
        return environ

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Silent: `synwsgi.observability.accesslog` writes the access line, with secrets redacted."""


def run_dev_server(app: WSGIApplication, host: str = "127.0.0.1", port: int = 8008, **options: Any) -> None:
    """`werkzeug.serving.run_simple`, threaded, with `DevRequestHandler`.

    When the root logger has no handler (the program configured no logging),
    `logging_config()` is installed first, so the access lines and errors reach
    stderr, request-tagged; a program that configured logging keeps its own.
    """
    if not logging.getLogger().handlers:
        logging.config.dictConfig(logging_config())
    options.setdefault("threaded", True)
    run_simple(host, port, app, request_handler=DevRequestHandler, **options)
