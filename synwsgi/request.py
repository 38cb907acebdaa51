"""`SynapseRequest`: a Werkzeug request that knows its raw path, id and servlet.

Werkzeug's own `Request.__init__` parses the host, path and headers eagerly
(about 2 us); a JSON API rarely needs most of it, so this subclass fills
those attributes on first use instead.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import TYPE_CHECKING
from urllib.parse import quote

from werkzeug.datastructures import EnvironHeaders, Headers
from werkzeug.utils import cached_property
from werkzeug.wrappers import Request

from .config import DEFAULT_CONFIG, ServerConfig
from .headers import Header

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

    from .cancellation import CancelScope
    from .responses import Response

_request_seq = itertools.count()

# Characters that stay unescaped when a raw path has to be rebuilt from PATH_INFO.
_PATH_SAFE = "/:@!$&'()*+,;=-._~"


def raw_path_from_environ(environ: WSGIEnvironment) -> str:
    """The request path as the client sent it: still percent-encoded, no query.

    gunicorn gives the request target in `RAW_URI`, the Werkzeug servers in
    `REQUEST_URI` too. Without either, `PATH_INFO` (already decoded) is quoted
    again, which cannot tell `%2F` from `/`.
    """
    target = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if target is None:
        path_info = environ.get("PATH_INFO", "")
        return quote(path_info.encode("latin-1"), safe=_PATH_SAFE) or "/"
    path = target.partition("?")[0]
    if path.startswith(("http://", "https://")):
        # absolute-form target: drop scheme and authority. `//a/b` is a path.
        authority_and_path = path.partition("://")[2]
        path = "/" + authority_and_path.partition("/")[2]
    script_name = environ.get("SCRIPT_NAME")
    if script_name:
        quoted_root = quote(script_name.encode("latin-1"), safe=_PATH_SAFE)
        if path.startswith(quoted_root):
            path = path[len(quoted_root) :]
    return path or "/"


def next_request_id(method: str, header_value: str | None = None) -> str:
    """`<METHOD>-<n>` from a per-process counter, or `<METHOD>-<header value>`."""
    if header_value:
        return f"{method}-{header_value}"
    return f"{method}-{next(_request_seq)}"


def _latin1_to_text(value: str) -> str:
    return value.encode("latin-1").decode("utf-8", "replace")


class SynapseRequest(Request):
    """One HTTP request, plus the state Synapse keeps on its request object.

    Attributes:
        raw_path: the percent-encoded path routing matches against.
        request_id: `GET-17`; tags every log record of this request.
        servlet_name: the name metrics and logs use for the handler.
        response: what `respond_with_*` produced, if a handler used them.
        response_code: the status sent, for logs and metrics.
        cancel_scope: the disconnect/cancellation state while a handler runs.
    """

    def __init__(
        self,
        environ: WSGIEnvironment,
        raw_path: str | None = None,
        request_id: str | None = None,
        config: ServerConfig = DEFAULT_CONFIG,
    ) -> None:
        # Werkzeug's __init__ is skipped on purpose: see the module docstring.
        self.environ = environ
        self.shallow = False
        self.method = environ.get("REQUEST_METHOD", "GET").upper()
        self.raw_path = raw_path if raw_path is not None else raw_path_from_environ(environ)
        self.request_id = request_id or next_request_id(self.method)
        self.config = config
        self.max_content_length = config.max_request_body_size
        self.servlet_name = "unknown"
        # The mount prefix that led here, and the raw path below it.
        self.prepath = ""
        self.postpath = self.raw_path
        self.response: Response | None = None
        self.response_code: int | None = None
        self.response_headers: list[Header] | None = None
        self.cancel_scope: CancelScope | None = None
        self.requester: str | None = None

    # -- the attributes werkzeug would have set in __init__ ------------------

    @cached_property
    def headers(self) -> Headers:  # type: ignore[override]
        return EnvironHeaders(self.environ)

    @cached_property
    def scheme(self) -> str:  # type: ignore[override]
        return str(self.environ.get("wsgi.url_scheme", "http"))

    @cached_property
    def server(self) -> tuple[str, int | None] | None:  # type: ignore[override]
        name = self.environ.get("SERVER_NAME")
        if not name:
            return None
        port = self.environ.get("SERVER_PORT")
        return name, int(port) if port and port.isdigit() else None

    @cached_property
    def root_path(self) -> str:  # type: ignore[override]
        return _latin1_to_text(self.environ.get("SCRIPT_NAME") or "").rstrip("/")

    @cached_property
    def path(self) -> str:  # type: ignore[override]
        return "/" + _latin1_to_text(self.environ.get("PATH_INFO") or "").lstrip("/")

    @cached_property
    def query_string(self) -> bytes:  # type: ignore[override]
        return str(self.environ.get("QUERY_STRING", "")).encode("latin-1")

    @cached_property
    def remote_addr(self) -> str | None:  # type: ignore[override]
        return self.environ.get("REMOTE_ADDR")

    # -- Synapse's request API -----------------------------------------------

    def setHeader(self, name: str, value: str) -> None:  # noqa: N802 (Synapse's spelling)
        """Set a response header; it replaces any of that name the response has."""
        self.add_response_headers(((name, value),))

    def add_response_headers(self, headers: Iterable[Header]) -> None:
        if self.response_headers is None:
            self.response_headers = []
        self.response_headers.extend(headers)

    def setResponseCode(self, code: int) -> None:  # noqa: N802
        self.response_code = code

    def is_disconnected(self) -> bool:
        """Whether the client is known to have gone (only watched for `@cancellable`).

        Inside a `@cancellable` handler this raises `CancelledError` once the
        client is gone, so a handler polling it stops on every worker type.
        """
        scope = self.cancel_scope
        if scope is None:
            return False
        scope.raise_if_cancelled()
        return scope.disconnected

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.request_id} {self.method} {self.raw_path!r}>"
