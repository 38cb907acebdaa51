"""The raw request path, as the client sent it, and strict unquoting of its parts.

Synapse routes on the path before percent-decoding (so `%2F` stays inside a
room alias) and decodes each parameter afterwards. WSGI's `PATH_INFO` is
already decoded, so the raw target comes from the server's own key.
"""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING
from urllib.parse import quote, unquote_to_bytes

from ..errors import InvalidPathParameter

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

# Characters that stay unescaped when a raw path has to be rebuilt from PATH_INFO.
_PATH_SAFE = "/:@!$&'()*+,;=-._~"


def raw_path_from_environ(environ: WSGIEnvironment) -> str:
    """The request path as the client sent it: still percent-encoded, no query.

    gunicorn gives the request target in `RAW_URI`, the Werkzeug servers in
    `REQUEST_URI` too. Without either, `PATH_INFO` (already decoded) is quoted
    again, which cannot tell `%2F` from `/`. PEP 3333's `PATH_INFO` is bytes
    decoded as latin-1; text beyond latin-1 (a middleware that decoded it)
    can only be the path's UTF-8, and is read as such rather than failing.
    """
    target = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if target is None:
        path_info: str = environ.get("PATH_INFO", "")
        try:
            raw = path_info.encode("latin-1")
        except UnicodeEncodeError:
            raw = path_info.encode("utf-8", "surrogatepass")
        return quote(raw, safe=_PATH_SAFE) or "/"
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


def unquote_strict(value: str, name: str = "path") -> str:
    """Percent-decode `value` (raw path text) as strict UTF-8.

    Only bytes that are not UTF-8 are refused; an invalid escape such as
    `%ZZ` passes through as text, as Synapse's unquoting does.
    """
    if "%" not in value and value.isascii():
        return value
    # The same room ids and event types come back request after request.
    decoded = _decode_cached(value) if len(value) <= 256 else _decode(value)
    if decoded is None:
        raise InvalidPathParameter(name)
    return decoded


def _decode(value: str) -> str | None:
    try:
        raw = value.encode("latin-1")  # servers hand over raw bytes as latin-1 text
    except UnicodeEncodeError:
        raw = value.encode("utf-8")
    try:
        return unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        return None


_decode_cached = functools.lru_cache(maxsize=4096)(_decode)


_SECRET_PARAM = re.compile(r"(^|[&;])((?:access(?:_|%5f)token|client(?:_|%5f)secret)=)[^&;]*", re.IGNORECASE)


def redact_uri(raw_path: str, query_string: str) -> str:
    """The request URI with `access_token` and `client_secret` values hidden (for logs)."""
    if not query_string:
        return raw_path
    return raw_path + "?" + _SECRET_PARAM.sub(r"\1\2<redacted>", query_string)
