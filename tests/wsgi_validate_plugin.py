"""pytest plugin: every app given to Werkzeug's test `Client` runs inside `wsgiref.validate.validator`.

Use it on any test run::

    python -m pytest tests -p tests.wsgi_validate_plugin --ignore=tests/integration --ignore=tests/hardening

The validator (PEP 3333 "lint") checks both sides of every call: the environ
the client built, and everything the application does with it: the status
line and header list given to `start_response` (including a Content-Type on
every response but 204/304), `exc_info` handling, that the body is an
iterable of `bytes`, that `start_response` ran before the first piece was
read, that `wsgi.input` is read as PEP 3333 allows (`read(size)`), and that
the body is never read after `close()`. A violation raises `AssertionError`
inside the request, so the test that made it fails.

Two things belong to the *server* side, which a test client plays here:

* PEP 3333 obliges the server to call the body's `close()`. Werkzeug's
  `Client` leaves that to `TestResponse.close()`, which many tests never
  call, and the validator then complains when the body is garbage collected.
  The plugin closes every response a test left open when that test ends
  (a `close()` that raises fails the test).
* Some tests hand the application an environ no conforming server would
  build (a non-numeric `CONTENT_LENGTH`, say) to see that it copes. For
  those the environ check is skipped and everything else is still checked
  (the same helpers of `wsgiref.validate`); they are counted in the summary.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any
from wsgiref import validate

import pytest
from werkzeug.test import Client, TestResponse

_original_init = Client.__init__
_original_open = Client.open

#: Responses opened during the running test, closed when it ends.
_open_responses: list[TestResponse] = []
#: Requests whose environ the test made invalid on purpose: (test, reason).
_invalid_environs: list[tuple[str, str]] = []
_current_test = "-"
_validated_calls = 0


def _lint_app_side(application: Any, environ: Any, start_response: Any) -> Any:
    """`wsgiref.validate.validator`'s checks of the application, without `check_environ`."""
    started: list[None] = []

    def start_response_wrapper(*args: Any, **kw: Any) -> Any:
        validate.assert_(len(args) in (2, 3), f"Invalid number of arguments: {args}")
        validate.assert_(not kw, "No keyword arguments allowed")
        status, headers = args[0], args[1]
        exc_info = args[2] if len(args) == 3 else None
        validate.check_status(status)
        validate.check_headers(headers)
        validate.check_content_type(status, headers)
        validate.check_exc_info(exc_info)
        started.append(None)
        return validate.WriteWrapper(start_response(*args))

    environ["wsgi.input"] = validate.InputWrapper(environ["wsgi.input"])
    environ["wsgi.errors"] = validate.ErrorWrapper(environ["wsgi.errors"])
    iterator = application(environ, start_response_wrapper)
    validate.assert_(
        iterator is not None and iterator != False,  # noqa: E712 - the validator's own test
        "The application must return an iterator, if only an empty list",
    )
    validate.check_iterator(iterator)
    return validate.IteratorWrapper(iterator, started)


def _environ_problem(environ: Any) -> str | None:
    """Why `environ` is not one a PEP 3333 server could build, or None."""
    try:
        validate.check_environ(environ)
    except (AssertionError, ValueError, TypeError, KeyError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def _wrap(application: Any) -> Any:
    if getattr(application, "__synwsgi_validated__", False):
        return application
    checked = validate.validator(application)

    def validated(environ: Any, start_response: Any) -> Any:
        global _validated_calls
        _validated_calls += 1
        problem = _environ_problem(environ)
        if problem is not None:
            _invalid_environs.append((_current_test, problem))
            return _lint_app_side(application, environ, start_response)
        return checked(environ, start_response)

    validated.__synwsgi_validated__ = True  # type: ignore[attr-defined]
    validated.__wrapped__ = application  # type: ignore[attr-defined]
    return validated


@functools.wraps(_original_init)
def _validating_init(self: Client, application: Any, *args: Any, **kwargs: Any) -> None:
    _original_init(self, _wrap(application), *args, **kwargs)


@functools.wraps(_original_open)
def _tracking_open(self: Client, *args: Any, **kwargs: Any) -> TestResponse:
    response = _original_open(self, *args, **kwargs)
    _open_responses.extend(response.history)
    _open_responses.append(response)
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


def pytest_unconfigure(config: pytest.Config) -> None:
    uninstall()


@pytest.fixture(autouse=True)
def _close_test_client_responses(request: pytest.FixtureRequest) -> Iterator[None]:
    """Act as the PEP 3333 server: close whatever body a test left open."""
    global _current_test
    _current_test = request.node.nodeid
    _open_responses.clear()
    yield
    failures: list[str] = []
    while _open_responses:
        response = _open_responses.pop()
        try:
            response.close()
        except Exception as exc:  # a failing close() is a finding, not noise
            failures.append(f"{type(exc).__name__}: {exc}")
    if failures:
        pytest.fail("closing a response body failed: " + "; ".join(failures), pytrace=False)


def pytest_report_header(config: pytest.Config) -> str:
    return "wsgi_validate_plugin: every werkzeug.test.Client app runs inside wsgiref.validate.validator"


def pytest_terminal_summary(terminalreporter: Any) -> None:
    terminalreporter.section("wsgi_validate_plugin")
    terminalreporter.write_line(f"{_validated_calls} requests went through wsgiref.validate")
    if _invalid_environs:
        tests = sorted({test for test, _ in _invalid_environs})
        terminalreporter.write_line(
            f"{len(_invalid_environs)} requests in {len(tests)} tests had an environ made invalid "
            "on purpose (environ check skipped, application side still validated):"
        )
        for test in tests:
            terminalreporter.write_line(f"  {test}")
