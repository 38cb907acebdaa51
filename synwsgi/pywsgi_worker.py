"""gunicorn's `gevent_pywsgi` worker with five fixes: `worker_class = "synwsgi.pywsgi_worker.PyWSGIWorker"`.

gunicorn's `gevent_pywsgi` worker serves through `gevent.pywsgi`, which costs
about two thirds of what its `gevent` worker does per request (one worker,
wrk -c32: 10.1-11.2k vs 6.4-7.6k requests per CPU-second for a raw WSGI app).
synwsgi works on it as it is (it finds the client socket in
`environ["gunicorn.sock"]`), but `gevent.pywsgi` itself differs from
gunicorn's HTTP handling in five ways this subclass puts right:

* **HEAD of a streamed response**: pywsgi announces it chunked, as the GET
  would be, then also writes the last chunk (`0\\r\\n\\r\\n`), which a
  keep-alive client then reads as the start of the next response;
* **two `Content-Length` headers**: pywsgi passes on the first, where gunicorn
  answers 400 (a proxy that used the other one would see another request in
  the body: request smuggling);
* **no time limit on a request head**: a client that sends one header line
  every few seconds, or keeps a connection open and sends nothing, holds one
  of the worker's connections for ever; here, as in gunicorn's own workers,
  the head (and the next request on a kept-alive connection) must arrive
  within gunicorn's `keepalive` seconds, and `keepalive = 0` closes each
  connection after one response;
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

from typing import Any

import gevent
from gunicorn.workers.ggevent import GeventPyWSGIWorker, PyWSGIHandler


class _HeadTimedOut(Exception):
    """The request head did not arrive within `keepalive` seconds."""


class Handler(PyWSGIHandler):  # type: ignore[misc]
    """`gevent.pywsgi`'s handler with the fixes in the module docstring."""

    #: Seconds for a request head to arrive; None: no keep-alive, no bound.
    head_timeout: float | None = None

    def handle_one_request(self) -> Any:
        timer = None
        if self.head_timeout is not None:
            timer = gevent.Timeout.start_new(self.head_timeout, _HeadTimedOut)
        self._head_timer = timer
        try:
            return super().handle_one_request()
        except _HeadTimedOut:
            return None  # as gunicorn does: close without an answer
        finally:
            if timer is not None:
                timer.close()

    def _handle_client_error(self, ex: BaseException) -> Any:
        if isinstance(ex, _HeadTimedOut):
            raise ex  # out of `read_request`'s catch-all, to `handle_one_request`
        return super()._handle_client_error(ex)

    def read_request(self, raw_requestline: str) -> Any:
        result = super().read_request(raw_requestline)
        lengths = self.headers.get_all("Content-Length") or []
        if len(lengths) > 1:
            raise ValueError("more than one Content-Length header")  # pywsgi answers 400 and closes
        return result

    def get_environ(self) -> dict[str, Any]:
        # The head is in: the application's time is not bounded here.
        if self._head_timer is not None:
            self._head_timer.close()
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
        keepalive = self.cfg.keepalive
        self.wsgi_handler = type(
            "Handler", (Handler,), {"head_timeout": float(keepalive) if keepalive and keepalive > 0 else None}
        )
