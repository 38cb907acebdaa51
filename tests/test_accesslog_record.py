"""The access line's record is the `LogRecord` logging would make, field for field.

`synwsgi.observability.accesslog` builds it from a per-process template instead of through
`Logger.log` (which looks up the caller's frame); handlers and formatters
must not be able to tell.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

import pytest

from synwsgi.observability import accesslog

ARGS = ("127.0.0.1", "synwsgi", None, 0.0125, 0.0, 0.001, 0.0, 57, 200, "GET", "/p", "HTTP/1.1", "curl")


def _usual(level: int) -> logging.LogRecord:
    return logging.LogRecord(
        "synwsgi.access",
        level,
        accesslog.__file__,
        0,
        accesslog._ACCESS_FORMAT,
        ARGS,
        None,
        "request_finished",
    )


@pytest.mark.parametrize("level", [logging.INFO, logging.DEBUG])
def test_fields_are_those_of_a_logrecord(level: int) -> None:
    before = time.time()
    ours = accesslog._new_record(level, ARGS)
    usual = _usual(level)
    assert type(ours) is logging.LogRecord
    timed = {"created", "msecs", "relativeCreated"}
    assert set(ours.__dict__) == set(usual.__dict__)
    assert {k: v for k, v in ours.__dict__.items() if k not in timed} == {
        k: v for k, v in usual.__dict__.items() if k not in timed
    }
    assert before <= ours.created <= usual.created
    assert ours.msecs == int((ours.created - int(ours.created)) * 1000) + 0.0
    assert type(ours.msecs) is float
    assert ours.relativeCreated == (ours.created - logging._startTime) * 1000  # type: ignore[attr-defined]
    assert ours.getMessage() == usual.getMessage()


def test_thread_fields_are_the_callers() -> None:
    seen: list[logging.LogRecord] = []
    thread = threading.Thread(
        target=lambda: seen.append(accesslog._new_record(logging.INFO, ARGS)), name="w-1"
    )
    thread.start()
    thread.join()
    assert seen[0].threadName == "w-1"
    assert seen[0].thread == thread.ident


@pytest.fixture
def renamed_info() -> Iterator[None]:
    logging.addLevelName(logging.INFO, "INF")
    try:
        yield
    finally:
        logging.addLevelName(logging.INFO, "INFO")


def test_level_names_follow_add_level_name(renamed_info: None) -> None:
    assert accesslog._new_record(logging.INFO, ARGS).levelname == "INF"


def test_a_custom_record_factory_makes_the_record() -> None:
    class Tagged(logging.LogRecord):
        tagged = True

    previous = logging.getLogRecordFactory()
    logging.setLogRecordFactory(Tagged)
    try:
        record = accesslog._new_record(logging.INFO, ARGS)
    finally:
        logging.setLogRecordFactory(previous)
    assert type(record) is Tagged
    assert record.getMessage() == _usual(logging.INFO).getMessage()
