"""The response body handed to the WSGI server, in place of Twisted's producer.

`ResponseBody` pulls pieces from the handler's body lazily (the server writes
each one before asking for the next, which is the backpressure), in the
request's context, and runs its close callbacks exactly once; `rechunk`
coalesces tiny pieces and splits big ones. A failure after the first byte is
logged once and turned into `ResponseAborted`, a `BrokenPipeError`: every
server then drops the connection without the final chunk (so the client sees
a truncated body, not a clean-looking one) and without logging it again.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable, Iterable, Iterator

from .errors import ResponseAborted

logger = logging.getLogger(__name__)


def rechunk(pieces: Iterable[bytes], min_size: int, max_size: int) -> Iterator[bytes]:
    """Re-cut `pieces` so that every piece but the last is `min_size`..`max_size` bytes.

    Pieces already within bounds pass through without a copy.
    """
    buffer: list[bytes] = []
    buffered = 0
    for piece in pieces:
        if not buffered and min_size <= len(piece) <= max_size:
            yield piece
            continue
        if not piece:
            continue
        buffer.append(piece)
        buffered += len(piece)
        if buffered < min_size:
            continue
        data = b"".join(buffer) if len(buffer) > 1 else buffer[0]
        buffer.clear()
        start = 0
        while len(data) - start > max_size:
            yield data[start : start + max_size]
            start += max_size
        rest = data[start:] if start else data
        if len(rest) >= min_size:
            yield rest
            buffered = 0
        else:
            buffer.append(rest)
            buffered = len(rest)
    if buffered:
        yield b"".join(buffer)


def split(data: bytes, max_size: int) -> Iterator[bytes]:
    """`data` in pieces of at most `max_size` bytes (none for empty data)."""
    if not data:
        return
    if len(data) <= max_size:
        yield data
        return
    for start in range(0, len(data), max_size):
        yield data[start : start + max_size]


class ResponseBody:
    """The WSGI iterable: counts what it hands over, knows if it finished.

    The server iterates and closes it outside the request's context, so
    `context` is entered for `close()` and, when there is a handler's
    `source` to pull from, for each piece (bytes already in memory run no
    handler code and need none).
    """

    __slots__ = (
        "_closed",
        "_context",
        "_on_close",
        "_pieces",
        "_pull_context",
        "_source",
        "bytes_sent",
        "finished",
    )

    def __init__(
        self,
        pieces: Iterator[bytes],
        source: object = None,
        on_close: Callable[[ResponseBody], None] | None = None,
        context: contextvars.Context | None = None,
    ) -> None:
        self._pieces = pieces
        self._source = source
        self._on_close = on_close
        self._context = context
        self._pull_context = context if source is not None else None
        self.bytes_sent = 0
        self.finished = False
        self._closed = False

    def __iter__(self) -> ResponseBody:
        return self

    def __next__(self) -> bytes:
        piece = self._pull() if self._pull_context is None else self._pull_context.run(self._pull)
        self.bytes_sent += len(piece)
        return piece

    def _pull(self) -> bytes:
        try:
            return next(self._pieces)
        except StopIteration:
            self.finished = True
            raise
        except Exception as exc:
            logger.error(
                "Failed while sending the response body; dropping the connection",
                exc_info=(type(exc), exc, exc.__traceback__),
            )
            raise ResponseAborted() from exc

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._context is None:
            self._finish()
        else:
            self._context.run(self._finish)

    def discard(self) -> None:
        """Close a body that never reached the server, from inside the request's context."""
        if not self._closed:
            self._closed = True
            self._finish()

    def _finish(self) -> None:
        try:
            close = getattr(self._source, "close", None)
            if close is not None:
                close()
        finally:
            if self._on_close is not None:
                self._on_close(self)
