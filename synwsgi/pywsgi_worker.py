"""gunicorn's `gevent_pywsgi` worker with seven fixes: `worker_class = "synwsgi.pywsgi_worker.PyWSGIWorker"`.

gunicorn's `gevent_pywsgi` worker serves through `gevent.pywsgi`, which costs
about two thirds of what its `gevent` worker does per request (one worker,
wrk -c32: 10.1-11.2k vs 6.4-7.6k requests per CPU-second for a raw WSGI app).
synwsgi works on it as it is (it finds the client socket in
`environ["gunicorn.sock"]`), but `gevent.pywsgi` itself differs from
gunicorn's HTTP handling in seven ways this subclass puts right:

* **HEAD of a streamed response**: pywsgi announces it chunked, as the GET
  would be, then also writes the last chunk (`0\\r\\n\\r\\n`), which a
  keep-alive client then reads as the start of the next response;
* **a strict request head**: pywsgi passes on the first of two
  `Content-Length` headers, drops a `Content-Length` sent with
  `Transfer-Encoding`, and takes lower-case or odd methods and raw non-ASCII
  bytes in the target; gunicorn answers all of them 400 (a proxy that read
  the head another way would see another request in the body: request
  smuggling), and so does this handler, with gunicorn's small HTML page;
* **no time limit on a request head**: a client that sends one header line
  every few seconds, or keeps a connection open and sends nothing, holds one
  of the worker's connections for ever; here, as in gunicorn's own workers,
  the head (and the next request on a kept-alive connection) must arrive
  within gunicorn's `keepalive` seconds, and `keepalive = 0` closes each
  connection after one response;
* **its head parser and buffers**: pywsgi parses header fields with the
  `email` package (~8 % of the CPU of a woken `/sync` long-poll) and keeps an
  8 KiB read buffer per connection, parked or not; here a small parser of its
  own and a 1 KiB buffer;
* **limits on a request head**: pywsgi ignores gunicorn's
  `limit_request_line`, `limit_request_fields` and `limit_request_field_size`
  (a 64 KiB header line or 100 fields of 64 KiB reach the application), and
  answers its own bounds with a bare 400; here they apply as under gunicorn's
  workers, with gunicorn's 414 and 431 (a small HTML page);
* **ending a connection**: when the application asks to close it (408/413
  with the body left unread, see `connection.ask_server_to_close`), or with
  `keepalive = 0`, pywsgi closes after the response without saying so; here
  the response says `Connection: close`, as gunicorn's does;
* **its access line**: when writing to a client that has gone fails, pywsgi
  replaces the status with `socket error: ...`, which gunicorn logs as the
  status `socket`; here it keeps the status that was sent (499 for a
  cancelled request, as on the other workers).
"""

from __future__ import annotations

import http.client
import re
from typing import Any

import gevent
from gunicorn.workers.ggevent import GeventPyWSGIWorker, PyWSGIHandler


class _HeadTimedOut(Exception):
    """The request head did not arrive within `keepalive` seconds."""


class _HeadRefused(Exception):
    """A request head over gunicorn's `limit_request_*` settings."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason

    def response(self) -> tuple[str, bytes]:
        """What pywsgi's handler sends before closing: a small HTML page, as gunicorn's own."""
        body = f"<html><head><title>{self.reason}</title></head><body><h1>{self.reason}</h1></body></html>"
        head = (
            f"HTTP/1.1 {self.status} {self.reason}\r\nConnection: close\r\n"
            f"Content-Type: text/html\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        return str(self.status), (head + body).encode("latin-1")


# Raised afresh each time (a shared instance would keep every traceback's frames).
_BAD_REQUEST = (400, "Bad Request")
_URI_TOO_LONG = (414, "Request-URI Too Long")
_FIELDS_TOO_LARGE = (431, "Request Header Fields Too Large")
#: A method as gunicorn accepts it: an upper-case token of 3 to 20 characters.
_METHOD = re.compile(r"[A-Z0-9!#$%&'*+\-.^_`|~]{3,20}")
#: A header field name (RFC 9110 token): no space before the colon, no folded line.
_FIELD_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+\-.^_`|~]+")
#: Bytes of the buffered reader of each connection: pywsgi's default (8 KiB) stays
#: allocated while a request is parked; a request head rarely needs more than 1 KiB.
RFILE_BUFFER = 1024


class _ClientLeft(Exception):
    """The connection ended inside a request head."""


class _Head:
    """The fields of a request head: what pywsgi and gunicorn use of `http.client.HTTPMessage`.

    `http.client.parse_headers` runs the `email` package's feed parser: about
    8 % of a gevent worker's CPU per woken `/sync` long-poll. The fields are
    kept in order, with their names lower-cased once for the lookups.
    """

    status = ""  # http.client's "Line too long" marker: never set here (such a line is a 431)
    __slots__ = ("_fields", "_names")

    def __init__(self, fields: list[tuple[str, str]]) -> None:
        self._fields = fields
        self._names = [name.lower() for name, _ in fields]

    def get(self, name: str, default: str | None = None) -> str | None:
        name = name.lower()
        for index, candidate in enumerate(self._names):
            if candidate == name:
                return self._fields[index][1]
        return default

    getheader = get

    def get_all(self, name: str, failobj: Any = None) -> Any:
        name = name.lower()
        found = [self._fields[i][1] for i, candidate in enumerate(self._names) if candidate == name]
        return found or failobj

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._names

    def __delitem__(self, name: str) -> None:
        name = name.lower()
        kept = [i for i, candidate in enumerate(self._names) if candidate != name]
        self._fields = [self._fields[i] for i in kept]
        self._names = [self._names[i] for i in kept]

    def __len__(self) -> int:
        return len(self._fields)

    def items(self) -> list[tuple[str, str]]:
        return list(self._fields)

    raw_items = items

    @property
    def headers(self) -> list[str]:
        """The raw lines, as pywsgi's `get_environ` reads them."""
        return [f"{name}: {value}\r\n" for name, value in self._fields]

    @property
    def typeheader(self) -> str | None:
        return self.get("content-type")


def read_head(rfile: Any, max_line: int, max_fields: int) -> _Head:
    """The header fields up to the empty line; 431 past the limits, 400 for a malformed line."""
    fields: list[tuple[str, str]] = []
    while True:
        line = rfile.readline(max_line + 1)
        if len(line) > max_line:
            raise _HeadRefused(*_FIELDS_TOO_LARGE)
        if line in (b"\r\n", b"\n"):
            return _Head(fields)
        if not line.endswith(b"\n"):
            raise _ClientLeft
        if len(fields) >= max_fields:
            raise _HeadRefused(*_FIELDS_TOO_LARGE)
        name, colon, value = line.decode("latin-1").partition(":")
        if not colon or _FIELD_NAME.fullmatch(name) is None:
            raise _HeadRefused(*_BAD_REQUEST)
        fields.append((name, value.strip(" \t\r\n")))


class Handler(PyWSGIHandler):  # type: ignore[misc]
    """`gevent.pywsgi`'s handler with the fixes in the module docstring."""

    #: Seconds for a request head to arrive; None: no keep-alive, no bound.
    head_timeout: float | None = None
    #: gunicorn's `limit_request_line`, `limit_request_fields`, `limit_request_field_size` (0: none).
    limit_line = 0
    limit_fields = 0
    limit_field_size = 0

    _head_timer: Any = None

    def handle_one_request(self) -> Any:
        # One hub timer per connection, re-armed from now for each request head
        # (`again`; a restarted gevent `Timeout` would keep its first deadline,
        # and a new `Timeout` per request costs ~7 us, ~7 % of a small request).
        timer = self._head_timer
        if self.head_timeout is not None:
            if timer is None:
                timer = self._head_timer = gevent.get_hub().loop.timer(self.head_timeout, self.head_timeout)
            timer.again(gevent.getcurrent().throw, _HeadTimedOut)
        try:
            result = super().handle_one_request()
        except _HeadTimedOut:
            return None  # as gunicorn does: close without an answer
        finally:
            if timer is not None:
                timer.stop()
        if isinstance(result, tuple) and result[0] == "414":  # pywsgi's own bound (8 192), no page
            return _HeadRefused(*_URI_TOO_LONG).response()
        return result

    def handle(self) -> Any:
        try:
            return super().handle()
        finally:
            if self._head_timer is not None:
                self._head_timer.close()
                self._head_timer = None

    def __init__(self, sock: Any, address: Any, server: Any) -> None:
        super().__init__(sock, address, server, rfile=sock.makefile("rb", RFILE_BUFFER))

    def _handle_client_error(self, ex: BaseException) -> Any:
        if isinstance(ex, _ClientLeft):
            return None  # nobody to answer: close
        if isinstance(ex, _HeadTimedOut):
            raise ex  # out of `read_request`'s catch-all, to `handle_one_request`
        if isinstance(ex, _HeadRefused):
            return ex.response()
        # http.client's own bounds on a head: a line over 64 KiB, more than 100 fields.
        parsed: object = getattr(self, "headers", None)
        if isinstance(ex, http.client.HTTPException) or getattr(parsed, "status", None) == "Line too long":
            return _HeadRefused(*_FIELDS_TOO_LARGE).response()
        status, response = super()._handle_client_error(ex)  # logs it
        return _HeadRefused(*_BAD_REQUEST).response() if status == "400" else (status, response)

    def read_request(self, raw_requestline: str) -> Any:
        line = raw_requestline.rstrip("\r\n")
        if self.limit_line and len(line) > self.limit_line:
            raise _HeadRefused(*_URI_TOO_LONG)
        words = line.split(" ")
        if len(words) == 3:  # anything else pywsgi refuses itself
            method, target, _ = words
            # gunicorn's rules: a token method, a request target of visible ASCII only.
            if _METHOD.fullmatch(method) is None or not (target.isascii() and target.isprintable()):
                raise _HeadRefused(*_BAD_REQUEST)
        return super().read_request(raw_requestline)

    def MessageClass(self, rfile: Any, *args: Any) -> Any:
        """The parsed head, checked before pywsgi reads (and, with chunked, drops) its Content-Length."""
        # gunicorn's defaults when unlimited: a 64 KiB line, 100 fields (http.client's too)
        max_line = (self.limit_field_size or 65536) + 4  # name, ": ", value, CRLF
        headers = read_head(rfile, max_line, self.limit_fields or 100)
        lengths = headers.get_all("Content-Length")
        if lengths and (len(lengths) > 1 or not (lengths[0].isascii() and lengths[0].isdigit())):
            raise _HeadRefused(
                *_BAD_REQUEST
            )  # two lengths, or "+2", "0x2", ...: one proxy may read it another way
        if lengths and "Transfer-Encoding" in headers:
            raise _HeadRefused(
                *_BAD_REQUEST
            )  # pywsgi would drop the Content-Length; a proxy may have used it
        return headers

    def get_environ(self) -> dict[str, Any]:
        # The head is in: the application's time is not bounded here.
        if self._head_timer is not None:
            self._head_timer.stop()
        if self.head_timeout is None:
            self.close_connection = True
        environ: dict[str, Any] = super().get_environ()
        return environ

    def finalize_headers(self) -> None:
        super().finalize_headers()
        if self.command == "HEAD":
            self.response_use_chunked = False  # the headers say what a GET would; no body at all
        if self.close_connection and self.request_version != "HTTP/1.0":
            names = {name.lower() for name, _ in self.response_headers}
            if b"connection" not in names:
                self.response_headers.append((b"Connection", b"close"))  # as gunicorn says it

    def log_request(self) -> None:
        status: object = getattr(self, "status", None)
        sent: object = getattr(self, "_orig_status", None)
        if isinstance(status, str) and status.startswith("socket error") and sent:
            self.status = sent
        super().log_request()


class PyWSGIWorker(GeventPyWSGIWorker):  # type: ignore[misc]
    """gunicorn's `gevent_pywsgi` worker, serving with `Handler`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cfg = self.cfg
        keepalive = cfg.keepalive
        settings = {
            "head_timeout": float(keepalive) if keepalive and keepalive > 0 else None,
            "limit_line": cfg.limit_request_line,
            "limit_fields": cfg.limit_request_fields,
            "limit_field_size": cfg.limit_request_field_size,
        }
        self.wsgi_handler = type("Handler", (Handler,), settings)
