"""`ServerConfig`: every knob of the toolkit in one frozen dataclass."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Settings shared by a `Site` and its resources.

    Attributes:
        send_cors: add the CORS headers to JSON responses and OPTIONS answers.
        experimental_cors_msc3886: use MSC3886's CORS variant (conditional
            request headers allowed, `ETag, Location, X-Max-Bytes` exposed).
        max_request_body_size: request bodies larger than this get a 413
            `M_TOO_LARGE`, before any of the body is read when the size is declared.
        legacy_unrecognized_400: answer unknown endpoints with 400, as Synapse
            did before the spec asked for 404/405.
        min_chunk_size: streamed bodies are coalesced into pieces of at least
            this many bytes (tiny writes would each become an HTTP chunk).
        max_chunk_size: bodies are handed to the server in pieces of at most
            this many bytes, so one response cannot hog a cooperative worker.
        large_json_items: a JSON response with a list or dict of more than this
            many items near its top is encoded incrementally under gevent.
        request_id_header: take the request id from this header when present.
        behind_proxy: trust `X-Forwarded-For`/`-Proto` from one proxy hop.
        site_tag: the name of this listener in the access line and in the
            metrics' `tag` label, where the `AccessLogger` or `ServerMetrics`
            is given no tag of its own.
        cancellation_poll_interval: how often (seconds) a disconnect watcher
            looks at the client's socket while a `@cancellable` handler runs.
        body_read_timeout, body_min_rate: a request body must arrive within
            `body_read_timeout` seconds plus its size at `body_min_rate`
            bytes/s, else 408 (a slow-upload client cannot hold a cooperative
            worker's connection forever).
        gc_pacing: under gevent (read at a worker's first request), take full
            garbage collections over from CPython and run them between big
            JSON bodies (`_internal.collector`), and free each big JSON body in slices
            once it is sent: with two clients fetching 100 000-event bodies
            built per request, a small request's worst wait on one gevent
            worker went from 56-142 ms to 5-21 ms (medians of 5 runs on a
            busy 2-core machine). Threaded workers are not affected.
        async_driver: how an `async def` handler's awaitable is resolved. None:
            synwsgi's own, which runs coroutines that await only coroutines (a
            WSGI worker has no event loop). Plug a function taking the
            awaitable and returning its result to resolve Deferreds or asyncio
            futures (an asyncio loop in a thread, a Twisted reactor thread).
    """

    send_cors: bool = True
    experimental_cors_msc3886: bool = False
    max_request_body_size: int = 50 * 1024 * 1024
    legacy_unrecognized_400: bool = False
    min_chunk_size: int = 16 * 1024
    max_chunk_size: int = 64 * 1024
    large_json_items: int = 1000
    request_id_header: str | None = None
    behind_proxy: bool = False
    site_tag: str = "synwsgi"
    cancellation_poll_interval: float = 0.05
    body_read_timeout: float = 10.0
    body_min_rate: float = 64 * 1024
    async_driver: Callable[[Any], Any] | None = None
    gc_pacing: bool = True


DEFAULT_CONFIG = ServerConfig()
