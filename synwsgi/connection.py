"""The client's connection, as far as WSGI lets us see it.

PEP 3333 hides the socket, but gunicorn (`gunicorn.socket`) and the Werkzeug
dev server (`werkzeug.socket`) both hand it over. synwsgi only peeks at it
(to notice a client that left) and, after refusing a body it did not read,
half-closes it so the server does not wait for that body.
"""

from __future__ import annotations

import contextlib
import select
import socket
from typing import Any


def client_socket(environ: dict[str, Any]) -> socket.socket | None:
    """The client connection, from gunicorn or the Werkzeug dev server."""
    sock = environ.get("gunicorn.socket") or environ.get("werkzeug.socket")
    return sock if isinstance(sock, socket.socket) else None


def is_gevent_socket(sock: socket.socket) -> bool:
    return type(sock).__module__.startswith("gevent")


def client_gone(sock: socket.socket) -> bool | None:
    """Peek at the client's socket without consuming anything.

    True: the client closed (or reset) the connection. False: nothing to
    read, still there. None: unread bytes are waiting, so it cannot be told.
    """
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        if not readable:
            return False
        return True if sock.recv(1, socket.MSG_PEEK) == b"" else None
    except (OSError, ValueError):
        return True


def end_connection(sock: socket.socket) -> None:
    """Half-close the client connection once the response has been written.

    Used after giving up on a request body (408, 413): the client sees the
    response end, and the server stops waiting for (and discarding) a body
    that may be gigabytes long. PEP 3333 forbids sending `Connection: close`.
    """
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_WR)
