"""The client's connection, as far as WSGI lets us see it.

PEP 3333 hides the socket, but gunicorn (`gunicorn.socket`; its
`gevent_pywsgi` worker, which serves through `gevent.pywsgi`: `gunicorn.sock`)
and the Werkzeug dev server (`werkzeug.socket`) all hand it over. synwsgi only peeks at it (to
notice a client that left) and, after refusing a body it did not read, ends
the connection so the server does not wait for that body. Whether the worker
is gevent or threads is `runtime`'s business; these primitives work on both.
"""

from __future__ import annotations

import contextlib
import errno
import select
import socket
from typing import Any

#: Errors of a peek that mean the peer is gone for sure.
_GONE_ERRNOS = frozenset((errno.ECONNRESET, errno.ENOTCONN, errno.EPIPE, errno.ECONNABORTED))


def client_socket(environ: dict[str, Any]) -> socket.socket | None:
    """The client connection, from gunicorn (either key) or the Werkzeug dev server."""
    sock = environ.get("gunicorn.socket") or environ.get("gunicorn.sock") or environ.get("werkzeug.socket")
    return sock if isinstance(sock, socket.socket) else None


def peek(sock: socket.socket) -> bool | None:
    """What one byte of peeking says, for a socket known to be readable.

    True: the client closed (or reset) the connection. None: unread bytes
    are waiting (a body, a pipelined request), or the check failed: it
    cannot be told. A failed check is never read as "gone".
    """
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except OSError as exc:
        return True if exc.errno in _GONE_ERRNOS else None
    except ValueError:  # closed or detached socket object
        return None


def client_gone(sock: socket.socket) -> bool | None:
    """Peek at the client's socket without waiting or consuming anything.

    False: nothing to read, still there. True: the client closed the
    connection. None: cannot be told (bytes pending, or the check failed).
    `poll()` rather than `select()`: select fails for descriptors >= 1024,
    which a busy gevent worker passes quickly.
    """
    try:
        poller = select.poll()
        poller.register(sock.fileno(), select.POLLIN | select.POLLPRI)
        ready = poller.poll(0)
    except (OSError, ValueError):
        return None
    if not ready:
        return False
    return peek(sock)


def end_connection(sock: socket.socket) -> None:
    """Half-close the client connection once the response has been written.

    Used after giving up on a request body (408, 413): the client sees the
    response end, and the server stops waiting for (and discarding) a body
    that may be gigabytes long.
    """
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_WR)


def ask_server_to_close(environ: dict[str, Any], start_response: object) -> None:
    """Make the server end the connection after this response, unread body and all.

    PEP 3333 forbids an application's own `Connection` header (gunicorn drops
    it), but gunicorn's `start_response` is a method of its response object,
    which can be told to close (it then says `Connection: close`).
    `gevent.pywsgi` (gunicorn's `gevent_pywsgi` worker) has no such method:
    its handler, whose method `start_response` is too, ends the connection
    when its `close_connection` is set, but first discards the unread body
    through `wsgi.input` (however long it is): marking that input as read to
    its end stops the drain.
    Werkzeug's dev server says `Connection: close` on every response, but
    first reads and discards whatever the client still sends (up to 10 GB):
    shutting the socket for reading makes that drain end at once.
    """
    server_side = getattr(start_response, "__self__", None)
    force_close = getattr(server_side, "force_close", None)
    if callable(force_close):
        force_close()
        return
    if isinstance(getattr(server_side, "close_connection", None), bool):
        server_side.close_connection = True  # type: ignore[union-attr]
        _stop_pywsgi_drain(environ.get("wsgi.input"))
        return
    sock = environ.get("werkzeug.socket")
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RD)


def _stop_pywsgi_drain(body: object) -> None:
    """Make `gevent.pywsgi.Input` look read to its end, so the handler does not drain it.

    After the response the handler reads and discards whatever of the body
    the application left (`Input._discard`): for a refused gigabyte body,
    a gigabyte. Its position at its length and no chunked framing left is
    what a fully read body looks like.
    """
    if type(body).__module__ != "gevent.pywsgi" or not hasattr(body, "chunked_input"):
        return
    with contextlib.suppress(AttributeError, TypeError):
        body.content_length = body.position  # type: ignore[attr-defined]
        body.chunked_input = False
