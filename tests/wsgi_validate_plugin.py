"""pytest plugin: every app given to Werkzeug's test `Client` runs inside `wsgiref.validate.validator`.

Use it on any test run::

    python -m pytest tests -p tests.wsgi_validate_plugin --ignore=tests/integration --ignore=tests/hardening

The validator (PEP 3333 "lint") checks both sides of each call: the environ
the client builds, and everything the application does with it: the status
line and header list given to `start_response`, `exc_info` handling, that
the body is an iterable of `bytes`, that `start_response` ran before the
first piece, that `wsgi.input` is read as PEP 3333 allows, and that the
iterable is never read after `close()`. A violation raises `AssertionError`
inside the request, so the test that made it fails.

PEP 3333 also obliges the *server* to call the body's `close()`. Werkzeug's
`Client` leaves that to `TestResponse.close()`, which many tests never call;
the validator would then complain when the body is garbage collected
("Iterator garbage collected without being closed"), which is a fault of the
test client, not of the application. So the plugin acts as a conforming
server here: it closes every response a test left open when that test ends
(and before it is collected), and reports each `close()` that failed.
"""

from __future__ import annotations

import functools
import gc
from collections.abc import Iterator
from typing import Any
from wsgiref.validate import validator

import pytest
from werkzeug.test import Client, TestResponse

_original_init = Client.__init__
_original_open = Client.open

#: Responses opened during the running test, closed when it ends.
_open_responses: list[TestResponse] = []


def _is_wrapped(application: Any) -> bool:
    return getattr(application, "__synwsgi_validated__", False) is True


def _wrap(application: Any) -> Any:
    if _is_wrapped(application):
        return application
    checked = validator(application)
    checked.__synwsgi_validated__ = True  # type: ignore[attr-defined]
    checked.__wrapped_app__ = application  # type: ignore[attr-defined]
    return checked


@functools.wraps(_original_init)
def _validating_init(self: Client, application: Any, *args: Any, **kwargs: Any) -> None:
    _original_init(self, _wrap(application), *args, **kwargs)


@functools.wraps(_original_open)
def _tracking_open(self: Client, *args: Any, **kwargs: Any) -> TestResponse:
    response = _original_open(self, *args, **kwargs)
    _open_responses.append(response)
    for earlier in response.history:
        _open_responses.append(earlier)
    return response


def install() -> None:
    """Patch `werkzeug.test.Client` (idempotent)."""
    Client.__init__ = _validating_init  # type: ignore[method-assign]
    Client.open = _tracking_open  # type: ignore[method-assign]


def uninstall() -> None:
    Client.__init__ = _original_init  # type: ignore[method-assign]
    Client.open = _original_open  # type: ignore[method-assign]


def pytest_configure(config: pytest.Config) -> None:
    install()
    config.addinivalue_line("markers", "no_wsgi_validator: not used; every Client is validated")


def pytest_unconfigure(config: pytest.Config) -> None:
    uninstall()


@pytest.fixture(autouse=True)
def _close_test_client_responses() -> Iterator[None]:
    """Act as the PEP 3333 server: close whatever body a test left open."""
    _open_responses.clear()
    yield
    failures: list[str] = []
    while _open_responses:
        response = _open_responses.pop()
        try:
            response.close()
        except Exception as exc:  # a failing close() is a finding, not noise
            failures.append(f"{type(exc).__name__}: {exc}")
    gc.collect()
    if failures:
        pytest.fail("closing a response body failed: " + "; ".join(failures), pytrace=False)


def pytest_report_header(config: pytest.Config) -> str:
    return "wsgi_validate_plugin: every werkzeug.test.Client app is wrapped in wsgiref.validate.validator"
