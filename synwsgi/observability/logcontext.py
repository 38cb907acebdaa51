"""Request-tagged logging: `%(request)s` in any format string.

`RequestIdFilter` reads the request of the current context, which the `Site`
sets for the handler and re-enters for each piece of a streamed body, so
every record emitted on behalf of a request carries its id on every worker type.

`logging_config` also keeps the access line (one per request, the bulk of a
server's log) cheap: `PreciseFormatter` works out each second's time stamp
once, and `BufferedStreamHandler` writes lines in batches rather than with a
write and a flush each (Synapse's default log configuration buffers its log
file the same way, with a periodically flushing handler).
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from _thread import RLock as _CLock  # gevent does not patch it (see `BufferedStreamHandler`)
from typing import Any, TextIO

from ..request import current_request_var

LOG_FORMAT = "%(asctime)s - %(name)s - %(lineno)d - %(levelname)s - %(request)s - %(message)s"

#: how long (seconds) a buffered line may wait before it is written, at most
FLUSH_PERIOD = 0.5
#: buffered characters that are written at once
FLUSH_CAPACITY = 64 * 1024


class RequestIdFilter(logging.Filter):
    """Adds `record.request`: the current request id, or `-` outside requests."""

    def filter(self, record: logging.LogRecord) -> bool:
        request = current_request_var.get()
        record.request = request.request_id if request is not None else "-"
        return True


class PreciseFormatter(logging.Formatter):
    """`logging.Formatter`, with each second's time stamp formatted once.

    `asctime` is `time.strftime` of the record's time as a `struct_time`
    (`converter`), then its milliseconds. The conversion and `strftime` cost
    more than the rest of a short line, yet a `struct_time` holds whole
    seconds, so their text only changes with the second: it is kept for the
    last second seen (with the date format and converter it was made with).
    The output is `logging.Formatter`'s, byte for byte.
    """

    _last_second: tuple[int, str | None, Any, str] | None = None

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        created = record.created
        second = int(created)
        last = self._last_second
        converter = self.converter
        if last is None or last[0] != second or last[1] != datefmt or last[2] is not converter or created < 0:
            text = time.strftime(datefmt or self.default_time_format, converter(created))
            last = self._last_second = (second, datefmt, converter, text)
        if datefmt or not self.default_msec_format:
            return last[3]
        return self.default_msec_format % (last[3], record.msecs)


class BufferedStreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A `StreamHandler` that writes lines in batches, losing none.

    A line is formatted when it is logged (in the caller's context, so
    `%(request)s` and the time are the caller's) and kept; the kept lines
    are written together, in order, and the stream flushed:

    * at most `period` seconds after the first of them, by a timer (a
      thread, or a greenlet where gevent patched `threading`, armed by that
      first line: an idle process has no timer);
    * at once when a record of `flush_level` or above is logged (warnings
      and errors are never late), or when `capacity` characters are kept;
    * on `flush()` and `close()`: `logging.shutdown`, which runs at
      interpreter exit (a gunicorn worker's too), does both.

    Every path to the stream holds the handler's buffer lock (`handle`
    around `emit`, `flush` around the write), so lines from threads or
    greenlets are written whole and in the order they were logged. That
    lock is a C `RLock` of its own, not `Handler.lock`: gevent's monkey
    patching swaps every logging handler's lock for a pure-Python `RLock`
    (`threading._RLock`, several microseconds per record on a gevent worker,
    the largest part of the access line's cost there). What it guards never
    switches greenlets (a file write does not yield, and the timer is started
    after `handle` let the lock go), and being reentrant per OS thread, the
    greenlets of one thread never wait on each other for it (they cannot
    interleave inside it anyway). A forked child forgets what its parent
    kept (the parent writes it) instead of writing it twice.
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        period: float = FLUSH_PERIOD,
        capacity: int = FLUSH_CAPACITY,
        flush_level: int = logging.WARNING,
    ) -> None:
        super().__init__(stream)
        self.period = period
        self.capacity = capacity
        self.flush_level = flush_level
        self._buffer_lock = _CLock()
        self._pending: list[str] = []
        self._size = 0
        #: whether a timer will flush what is kept, and whether it is still to be started
        self._armed = self._start_timer = False
        _buffered_handlers.add(self)

    def handle(self, record: logging.LogRecord) -> Any:
        """`Handler.handle`, under the buffer lock (see the class docstring)."""
        passed = self.filter(record)
        if isinstance(passed, logging.LogRecord):  # Python 3.12+: a filter may replace the record
            record = passed
        if passed:
            with self._buffer_lock:
                self.emit(record)
                start_timer = self._start_timer
                self._start_timer = False
            if start_timer:  # outside the lock: starting a thread may switch greenlets
                timer = threading.Timer(self.period, self.flush)
                timer.daemon = True
                timer.start()
        return passed

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except RecursionError:
            raise
        except Exception:  # noqa: BLE001 - as StreamHandler.emit: a bad record never breaks the caller
            self.handleError(record)
            return
        self._pending.append(line)
        self._size += len(line)
        if record.levelno >= self.flush_level or self._size >= self.capacity:
            self._write(record)
        elif not self._armed:
            self._armed = self._start_timer = True  # `handle` starts it

    def flush(self) -> None:
        """Write every kept line now."""
        with self._buffer_lock:
            self._armed = False
            self._write(None)

    def close(self) -> None:
        self.flush()
        super().close()

    def _forget(self) -> None:
        self._buffer_lock = _CLock()  # the parent's may have been held by another thread
        self._pending = []
        self._size = 0
        self._armed = self._start_timer = False

    def _write(self, record: logging.LogRecord | None) -> None:
        """Write the kept lines (the caller holds the buffer lock)."""
        lines = self._pending
        if not lines:
            return
        self._pending = []
        self._size = 0
        terminator = self.terminator
        try:
            self.stream.write(terminator.join(lines) + terminator)
            self.stream.flush()
        except Exception:  # noqa: BLE001 - as StreamHandler.emit: reported by handleError
            self.handleError(record or logging.makeLogRecord({"msg": "%d log lines", "args": (len(lines),)}))


_buffered_handlers: weakref.WeakSet[BufferedStreamHandler] = weakref.WeakSet()


def _forget_all_in_child() -> None:
    for handler in list(_buffered_handlers):
        handler._forget()


os.register_at_fork(after_in_child=_forget_all_in_child)


def logging_config(level: str = "INFO") -> dict[str, object]:
    """A `logging.config.dictConfig` dict: everything to stderr, request-tagged.

    The access lines (`synwsgi.access`) go to stderr too, buffered (see
    `BufferedStreamHandler`): at most `FLUSH_PERIOD` seconds late, in order.
    """
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request": {"()": RequestIdFilter}},
        "formatters": {
            "precise": {"class": "synwsgi.observability.logcontext.PreciseFormatter", "format": LOG_FORMAT}
        },
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "precise",
                "filters": ["request"],
            },
            "access": {
                "class": "synwsgi.observability.logcontext.BufferedStreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "precise",
                "filters": ["request"],
            },
        },
        "root": {"level": level, "handlers": ["stderr"]},
        "loggers": {
            "gunicorn.error": {"level": level, "handlers": ["stderr"], "propagate": False},
            "gunicorn.access": {"level": "WARNING", "propagate": False},
            "synwsgi.access": {"handlers": ["access"], "propagate": False},
        },
    }
