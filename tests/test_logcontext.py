"""logging_config's cheap access-line path loses nothing and changes no byte.

`PreciseFormatter` must print what `logging.Formatter` prints;
`BufferedStreamHandler` must get every line to a real file, in order: within
its period when the process is idle (threads, and gevent greenlets), at once
for warnings, and at interpreter exit; a forked child must not write its
parent's pending lines again.
"""

from __future__ import annotations

import logging
import logging.config
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from synwsgi.observability.logcontext import (
    LOG_FORMAT,
    BufferedStreamHandler,
    PreciseFormatter,
    logging_config,
)

ROOT = Path(__file__).resolve().parent.parent


def _record(created: float, **fields: object) -> logging.LogRecord:
    record = logging.makeLogRecord(
        {"name": "synwsgi.access", "msg": "%s took %.3fsec", "args": ("GET", 0.0125), "levelno": 20}
    )
    record.levelname = "INFO"
    record.created = created
    record.msecs = int((created - int(created)) * 1000) + 0.0
    record.request = "GET-1"
    record.__dict__.update(fields)
    return record


@pytest.mark.parametrize(
    ("fmt", "datefmt"),
    [
        (LOG_FORMAT, None),
        ("%(asctime)s %(message)s", "%H:%M:%S"),
        ("%(asctime)s %(message)s", "%Y-%m-%dT%H:%M:%S%z"),
        ("%(levelname)s %(message)s", None),
        ("%(message)s", None),
    ],
)
def test_precise_formatter_prints_what_logging_formatter_prints(fmt: str, datefmt: str | None) -> None:
    ours, stdlib = PreciseFormatter(fmt, datefmt), logging.Formatter(fmt, datefmt)
    base = 1_764_600_000.0
    # within one second, across seconds, back in time, and the first second of 1970
    for created in (base + 0.001, base + 0.5, base + 0.999, base + 1.0, base + 61.25, base - 3600.75, 0.5):
        record = _record(created)
        assert ours.format(record) == stdlib.format(_record(created))
    # the cache follows a change of converter (UTC instead of local time)
    ours.converter = stdlib.converter = time.gmtime
    assert ours.format(_record(base + 2.5)) == stdlib.format(_record(base + 2.5))


def test_precise_formatter_adds_tracebacks_and_stacks_as_logging_does() -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        exc_info = sys.exc_info()
    ours, stdlib = PreciseFormatter(LOG_FORMAT), logging.Formatter(LOG_FORMAT)
    for fields in ({"exc_info": exc_info}, {"stack_info": "Stack (most recent call last):\n  here"}):
        assert ours.format(_record(1e9, **fields)) == stdlib.format(_record(1e9, **fields))
    with pytest.raises(ValueError, match="Formatting field not found in record: 'nope'"):
        PreciseFormatter("%(nope)s").format(_record(1e9))


def test_precise_formatter_with_defaults_takes_logging_path() -> None:
    ours = PreciseFormatter("%(extra)s %(message)s", defaults={"extra": "x"})
    assert ours.format(_record(1e9)) == "x GET took 0.013sec"


def _buffered(path: Path, **kwargs: float) -> tuple[logging.Logger, BufferedStreamHandler]:
    handler = BufferedStreamHandler(open(path, "a"), **kwargs)  # noqa: SIM115 - closed by the test
    handler.setFormatter(PreciseFormatter("%(levelname)s %(message)s"))
    logger = logging.Logger(f"test.buffered.{path.name}")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    return logger, handler


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def _wait_for(path: Path, count: int, timeout: float) -> float:
    """Seconds until `path` has `count` lines (fails after `timeout`)."""
    start = time.monotonic()
    while len(_lines(path)) < count:
        assert time.monotonic() - start < timeout, _lines(path)
        time.sleep(0.01)
    return time.monotonic() - start


def test_lines_wait_at_most_the_period_when_idle(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    logger, handler = _buffered(path, period=0.2)
    try:
        logger.info("one")
        logger.info("two")
        assert _lines(path) == [], "kept, not written per line"
        waited = _wait_for(path, 2, timeout=2.0)
        assert waited < 1.0
        assert _lines(path) == ["INFO one", "INFO two"]
        logger.info("three")  # a new batch arms a new timer
        _wait_for(path, 3, timeout=2.0)
        assert _lines(path)[-1] == "INFO three"
    finally:
        handler.close()


def test_a_warning_writes_at_once_and_in_order(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    logger, handler = _buffered(path, period=60.0)
    try:
        logger.info("before")
        logger.warning("careful")
        assert _lines(path) == ["INFO before", "WARNING careful"]
    finally:
        handler.close()


def test_capacity_writes_at_once(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    logger, handler = _buffered(path, period=60.0, capacity=100)
    try:
        for i in range(30):
            logger.info("line %d", i)
        written = _lines(path)
        assert written == [f"INFO line {i}" for i in range(len(written))]
        assert len(written) >= 20, "written in batches of about 100 characters"
        handler.flush()
        assert _lines(path) == [f"INFO line {i}" for i in range(30)]
    finally:
        handler.close()


def test_threads_lines_are_whole_and_none_lost(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    logger, handler = _buffered(path, period=0.05, capacity=2000)
    try:

        def work(n: int) -> None:
            for i in range(200):
                logger.info("thread %d line %d %s", n, i, "x" * (i % 50))

        threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        _wait_for(path, 1600, timeout=5.0)
        lines = _lines(path)
        for n in range(8):  # each thread's lines whole and in its order
            mine = [line for line in lines if line.startswith(f"INFO thread {n} ")]
            assert mine == [f"INFO thread {n} line {i} {'x' * (i % 50)}" for i in range(200)]
    finally:
        handler.close()


def _child(script: str, tmp_path: Path, *, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    code = textwrap.dedent(script)
    return subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=True,
    )


def test_logging_config_writes_access_lines_at_exit(tmp_path: Path) -> None:
    # The repo's configuration in a process that logs and exits without a flush:
    # logging.shutdown (atexit) writes what was kept, after the lines before it.
    _child(
        """
        import logging, logging.config, sys
        from synwsgi.observability.logcontext import logging_config
        config = logging_config("INFO")
        config["handlers"]["access"]["stream"] = open(sys.argv[1] + "/access.log", "a")
        logging.config.dictConfig(config)
        access = logging.getLogger("synwsgi.access")
        for i in range(1000):
            access.info("%s - %s - Processed request: %.3fsec", "127.0.0.1", i, 0.0005)
        logging.getLogger("synwsgi.access").debug("not at INFO")
        """,
        tmp_path,
    )
    lines = _lines(tmp_path / "access.log")
    assert len(lines) == 1000
    for i, line in enumerate(lines):  # LOG_FORMAT, as the stderr handler writes it
        expected = f" - synwsgi.access - 9 - INFO - - - 127.0.0.1 - {i} - Processed request: 0.001sec"
        assert line.endswith(expected)


GEVENT_CHILD = """
import logging, os, sys
from synwsgi.observability.logcontext import BufferedStreamHandler

def make_handler():
    handler = BufferedStreamHandler(open(sys.argv[1] + "/access.log", "a"), period=0.1)
    logger = logging.getLogger("g")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    return logger

if sys.argv[2] == "before":  # as gunicorn's arbiter: logging configured, then the worker patches
    logger = make_handler()
from gevent import monkey
monkey.patch_all()
import gevent
if sys.argv[2] == "after":
    logger = make_handler()

def requests(n):
    for i in range(20):
        logger.info("greenlet %d line %d", n, i)
        gevent.sleep(0)

gevent.joinall([gevent.spawn(requests, n) for n in range(5)])
before = len(open(sys.argv[1] + "/access.log").read().splitlines())
gevent.sleep(0.5)  # the hub is idle: the timer greenlet runs
after = open(sys.argv[1] + "/access.log").read().splitlines()
print(before, len(after), len(set(after)))
sys.stdout.flush()
os._exit(0)  # no atexit: only the timer can have written them
"""


@pytest.mark.parametrize("configured", ["before", "after"])
def test_gevent_timer_writes_an_idle_workers_lines(tmp_path: Path, configured: str) -> None:
    # "before": the handler's lock is a real RLock, which all greenlets of the
    # thread hold at once; the lines must still all arrive, once each.
    pytest.importorskip("gevent")
    done = subprocess.run(
        [sys.executable, "-c", GEVENT_CHILD, str(tmp_path), configured],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    before, after, distinct = done.stdout.split()
    assert int(before) < 100, "kept, not written per line"
    assert (after, distinct) == ("100", "100")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_does_not_repeat_its_parents_lines(tmp_path: Path) -> None:
    _child(
        """
        import logging, os, sys
        from synwsgi.observability.logcontext import BufferedStreamHandler
        handler = BufferedStreamHandler(open(sys.argv[1] + "/access.log", "a"), period=60.0)
        logger = logging.getLogger("f")
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.info("parent before fork")
        pid = os.fork()
        if pid == 0:
            logger.info("child")
            logging.shutdown()
            os._exit(0)
        os.waitpid(pid, 0)
        logger.info("parent after fork")
        """,
        tmp_path,
    )
    lines = _lines(tmp_path / "access.log")
    assert sorted(lines) == ["child", "parent after fork", "parent before fork"]


def test_logging_config_sends_access_lines_to_the_buffered_handler() -> None:
    config = logging_config("DEBUG")
    access = config["loggers"]["synwsgi.access"]  # type: ignore[index]
    assert access == {"handlers": ["access"], "propagate": False}
    handler = config["handlers"]["access"]  # type: ignore[index]
    assert handler["class"] == "synwsgi.observability.logcontext.BufferedStreamHandler"
    assert handler["filters"] == ["request"] and handler["formatter"] == "precise"
