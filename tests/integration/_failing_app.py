"""A tiny synwsgi app whose streamed bodies fail, for ``test_stream_errors.py``.

Built from the toolkit's public surface only (``Site``, ``JsonResource``,
``RestServlet``); the showcase app has no endpoint that fails mid-stream.

Routes (all GET):

``/_test/fail-mid-stream?token=T``
    a generator body that yields 4 pieces of 64 KiB (more than the toolkit's
    16 KiB coalescing minimum, so they are on the wire before the failure),
    then raises ``RuntimeError("boom-mid-stream token=T")``;
``/_test/fail-first-piece?token=T``
    a generator body that raises ``RuntimeError("boom-first-piece token=T")``
    before yielding anything (the toolkit can still send a 500);
``/_test/ok``
    ``{"ok": true}``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from synwsgi import JsonResource, RestServlet, Site, SynapseRequest, parse_string

PIECE = b'"' + b"y" * (64 * 1024 - 3) + b'",'
PIECES_BEFORE_FAILURE = 4


class FailMidStreamServlet(RestServlet):
    PATTERNS = ["/_test/fail-mid-stream"]

    def on_GET(self, request: SynapseRequest) -> Iterator[bytes]:
        token = parse_string(request, "token") or "-"

        def body() -> Iterator[bytes]:
            yield b"["
            for _ in range(PIECES_BEFORE_FAILURE):
                yield PIECE
            raise RuntimeError(f"boom-mid-stream token={token}")

        return body()


class FailFirstPieceServlet(RestServlet):
    PATTERNS = ["/_test/fail-first-piece"]

    def on_GET(self, request: SynapseRequest) -> Iterator[bytes]:
        token = parse_string(request, "token") or "-"

        def body() -> Iterator[bytes]:
            raise RuntimeError(f"boom-first-piece token={token}")
            yield b""  # pragma: no cover - makes this a generator

        return body()


class OkServlet(RestServlet):
    PATTERNS = ["/_test/ok"]

    def on_GET(self, request: SynapseRequest) -> tuple[int, Any]:
        return 200, {"ok": True}


def build_site() -> Site:
    resource = JsonResource()
    for servlet in (FailMidStreamServlet(), FailFirstPieceServlet(), OkServlet()):
        servlet.register(resource)
    return Site({"/_test": resource})


app = build_site()
