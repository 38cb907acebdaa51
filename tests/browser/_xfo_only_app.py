"""The showcase app (`wsgi:app`) with `Content-Security-Policy` taken off every response.

Chromium obeys `frame-ancestors` and ignores `X-Frame-Options` when a response
has both, so with the real app only the CSP header is ever put to the test.
Served through this wrapper, the refusal must come from `X-Frame-Options: DENY`
alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from wsgi import app as showcase

StartResponse = Callable[..., Any]


def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    def without_csp(status: str, headers: list[tuple[str, str]], *exc_info: Any) -> Any:
        kept = [(k, v) for k, v in headers if k.lower() != "content-security-policy"]
        return start_response(status, kept, *exc_info)

    return showcase(environ, without_csp)
