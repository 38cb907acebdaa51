"""Headless Chromium proves the browser-facing protections of the showcase app.

Four servers on 127.0.0.1, each port its own origin:

* ``page``: ``_unprotected_app`` under werkzeug's dev server; the browser opens
  its ``/page.html`` and runs every check's JavaScript from there;
* ``showcase``: the real ``wsgi:app`` under gunicorn (``gthread``);
* ``xfo_only``: ``wsgi:app`` under gunicorn with ``Content-Security-Policy``
  stripped (``_xfo_only_app``), so ``X-Frame-Options: DENY`` alone must block
  framing (Chromium ignores XFO when ``frame-ancestors`` is present);
* ``control``: another ``_unprotected_app``: same paths, no CORS and no
  anti-framing headers. The negative controls show that the checks below
  really see a refused frame or a refused fetch (they pass here only because
  the showcase's headers work).

What the browser must do with the showcase app:

* a ``PUT`` with ``Authorization`` and ``Content-Type: application/json`` from
  the page's origin goes through a real CORS preflight (``OPTIONS``, seen in
  gunicorn's access log) and its 200 JSON response is readable;
* JSON error responses (403 ``M_FORBIDDEN``) are readable cross-origin;
* ``/_demo/hello`` in an iframe is refused (Chromium's console says why, and
  the frame shows Chromium's error page, not the hello page).

Needs Debian's ``chromium`` and ``chromium-driver`` and ``selenium``:
``bash .ci/install-browser.sh``. Without them every test here FAILS (never
skips). Each step is bounded (page load / script timeouts, log waits), and
each test has a 60 s ``pytest-timeout``.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from integration.servers import Server, dev_server, gunicorn_server

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
INSTALL_HINT = "run `bash .ci/install-browser.sh` (as root) to install them"

SHOWCASE_APP = "wsgi:app"
XFO_ONLY_APP = "tests.browser._xfo_only_app:app"
UNPROTECTED_APP = "tests.browser._unprotected_app:app"

ROOM_SEND = "/_matrix/client/v3/rooms/!r:example.org/send/m.room.message/{txn}"
HELLO_TEXT = "Hello, world!"

#: Bounds (seconds) for every browser step.
PAGE_LOAD_TIMEOUT = 15
SCRIPT_TIMEOUT = 15
FRAME_LOAD_TIMEOUT_MS = 10_000
CONSOLE_WAIT = 5.0

CSP_REFUSAL = re.compile(
    r"violates the following Content Security Policy directive: \"frame-ancestors 'none'\""
)
XFO_REFUSAL = re.compile(r"Refused to display '[^']*' in a frame because it set 'X-Frame-Options' to 'deny'")
ANY_FRAME_REFUSAL = re.compile(f"{CSP_REFUSAL.pattern}|{XFO_REFUSAL.pattern}|Refused to (?:display|frame)")
CORS_REFUSAL = re.compile(r"has been blocked by CORS policy")

pytestmark = pytest.mark.timeout(60)


# --------------------------------------------------------------------------
# Servers and the browser
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def page_server() -> Iterator[Server]:
    with dev_server(UNPROTECTED_APP, ready_path="/page.html", timeout=20) as server:
        yield server


@pytest.fixture(scope="module")
def showcase() -> Iterator[Server]:
    with gunicorn_server(
        SHOWCASE_APP, "gthread", ready_path="/_matrix/client/versions", timeout=20
    ) as server:
        yield server


@pytest.fixture(scope="module")
def xfo_only() -> Iterator[Server]:
    with gunicorn_server(
        XFO_ONLY_APP, "gthread", ready_path="/_matrix/client/versions", timeout=20
    ) as server:
        yield server


@pytest.fixture(scope="module")
def control() -> Iterator[Server]:
    with dev_server(UNPROTECTED_APP, ready_path="/page.html", timeout=20) as server:
        yield server


def _require_browser() -> Any:
    """selenium's webdriver module, or a test failure saying how to install what is missing."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.is_file()]
    try:
        from selenium import webdriver
    except ImportError:
        missing.append("the Python package selenium")
        webdriver = None
    if missing:
        pytest.fail(
            f"browser tests need Debian's chromium, chromedriver and selenium; missing: "
            f"{', '.join(missing)}. {INSTALL_HINT}",
            pytrace=False,
        )
    return webdriver


@pytest.fixture(scope="module")
def driver() -> Iterator[Any]:
    webdriver = _require_browser()
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    # Explicit binary and driver: selenium manager never downloads anything.
    options.binary_location = str(CHROMIUM)
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--disable-extensions",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--metrics-recording-only",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    options.page_load_strategy = "normal"
    try:
        browser = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    except Exception as exc:
        pytest.fail(
            f"could not start {CHROMIUM} through {CHROMEDRIVER}: {exc}. {INSTALL_HINT}", pytrace=False
        )
    try:
        browser.set_page_load_timeout(PAGE_LOAD_TIMEOUT)
        browser.set_script_timeout(SCRIPT_TIMEOUT)
        yield browser
    finally:
        browser.quit()


class Page:
    """The test page on the page origin, with helpers to run checks from it."""

    def __init__(self, driver: Any, origin: str) -> None:
        self.driver = driver
        self.origin = origin
        self._console: list[dict[str, Any]] = []

    def console(self) -> list[str]:
        """Every console message of this page so far (`get_log` drains, so keep them)."""
        self._console.extend(self.driver.get_log("browser"))
        return [entry["message"] for entry in self._console]

    def wait_console(self, pattern: re.Pattern[str], timeout: float = CONSOLE_WAIT) -> str:
        deadline = time.monotonic() + timeout
        while True:
            for message in self.console():
                if pattern.search(message):
                    return message
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"no console message matching {pattern.pattern!r} within {timeout}s; console:\n"
                    + "\n".join(self.console())
                )
            time.sleep(0.1)

    def fetch(self, url: str, init: dict[str, Any] | None = None) -> dict[str, Any]:
        """`fetch(url, init)` in the page: {status, body} or {error} if the browser refused."""
        result: dict[str, Any] = self.driver.execute_async_script(
            """
            const [url, init, done] = arguments;
            fetch(url, init).then(
                async (r) => done({status: r.status, text: await r.text()}),
                (e) => done({error: e.name + ": " + e.message}),
            );
            """,
            url,
            init or {},
        )
        if "text" in result:
            result["body"] = json.loads(result.pop("text"))
        return result

    def frame(self, url: str, frame_id: str) -> tuple[str, str]:
        """Put `url` in an iframe; return what the frame shows: (location, body text).

        WebDriver can enter cross-origin frames, so this reads what the user
        would see: the page, or Chromium's error page for a refused frame.
        """
        outcome = self.driver.execute_async_script(
            """
            const [url, id, limit, done] = arguments;
            const frame = document.createElement("iframe");
            frame.id = id;
            frame.onload = () => done("load");
            setTimeout(() => done("timeout"), limit);
            frame.src = url;
            document.body.appendChild(frame);
            """,
            url,
            frame_id,
            FRAME_LOAD_TIMEOUT_MS,
        )
        assert outcome == "load", f"iframe for {url} did not finish loading: {outcome}"
        self.driver.switch_to.frame(self.driver.find_element("id", frame_id))
        try:
            location, text = self.driver.execute_script(
                "return [location.href, document.body ? document.body.innerText : ''];"
            )
        finally:
            self.driver.switch_to.default_content()
        return location, text


@pytest.fixture
def page(driver: Any, page_server: Server) -> Page:
    driver.get(f"{page_server.url}/page.html")
    driver.get_log("browser")  # drop what earlier tests left
    assert driver.execute_script("return document.title") == "cross-origin test page"
    return Page(driver, page_server.url)


def put_message(page: Page, server: Server, txn: str) -> dict[str, Any]:
    return page.fetch(
        server.url + ROOM_SEND.format(txn=txn),
        {
            "method": "PUT",
            "headers": {"Authorization": "Bearer x", "Content-Type": "application/json"},
            "body": json.dumps({"msgtype": "m.text", "body": "hello from the browser"}),
        },
    )


# --------------------------------------------------------------------------
# The showcase app
# --------------------------------------------------------------------------


def test_put_with_preflight_is_readable_cross_origin(page: Page, showcase: Server) -> None:
    mark = showcase.log_mark()
    result = put_message(page, showcase, "t1")

    assert result.get("status") == 200, f"{result}; console: {page.console()}"
    assert result["body"] == {
        "room_id": "!r:example.org",
        "event_type": "m.room.message",
        "txn_id": "t1",
        "content": {"msgtype": "m.text", "body": "hello from the browser"},
    }
    # The preflight really ran, before the PUT, and came from the page's origin.
    path = re.escape(ROOM_SEND.format(txn="t1"))
    options = showcase.wait_for_log(re.compile(rf'"OPTIONS {path} HTTP/1\.1" 2\d\d '), since=mark)
    put = showcase.wait_for_log(re.compile(rf'"PUT {path} HTTP/1\.1" 200 '), since=mark)
    log = showcase.log(mark)
    assert log.index(options) < log.index(put)
    assert f'"{page.origin}/"' in options  # the Referer column
    assert not [m for m in page.console() if CORS_REFUSAL.search(m)]


@pytest.mark.parametrize("authorization", [False, True], ids=["simple", "with-authorization"])
def test_json_error_is_readable_cross_origin(page: Page, showcase: Server, authorization: bool) -> None:
    init = {"headers": {"Authorization": "Bearer x"}} if authorization else {}
    result = page.fetch(f"{showcase.url}/_demo/error/forbidden", init)

    assert result.get("status") == 403, f"{result}; console: {page.console()}"
    assert result["body"]["errcode"] == "M_FORBIDDEN"
    assert result["body"]["error"] == "You are not allowed to do that"


def test_showcase_page_refuses_to_be_framed(page: Page, showcase: Server) -> None:
    url = f"{showcase.url}/_demo/hello"
    location, text = page.frame(url, "showcase")

    refusal = page.wait_console(CSP_REFUSAL)
    assert showcase.url in refusal
    assert location != url and location.startswith("chrome-error://"), (location, text)
    assert HELLO_TEXT not in text
    # The server did answer: the browser refused to display the answer.
    showcase.wait_for_log(re.compile(r'"GET /_demo/hello HTTP/1\.1" 200 '))


def test_x_frame_options_alone_refuses_framing(page: Page, xfo_only: Server) -> None:
    url = f"{xfo_only.url}/_demo/hello"
    location, text = page.frame(url, "xfo-only")

    refusal = page.wait_console(XFO_REFUSAL)
    assert xfo_only.url in refusal
    assert not [m for m in page.console() if CSP_REFUSAL.search(m)]
    assert location != url and location.startswith("chrome-error://"), (location, text)
    assert HELLO_TEXT not in text


# --------------------------------------------------------------------------
# Negative controls: without the headers, the same checks see the difference
# --------------------------------------------------------------------------


def test_control_unprotected_page_is_framed(page: Page, control: Server) -> None:
    url = f"{control.url}/_demo/hello"
    location, text = page.frame(url, "control")

    assert location == url
    assert HELLO_TEXT in text
    time.sleep(0.5)  # a refusal would be logged by now (it comes with the load event)
    assert not [m for m in page.console() if ANY_FRAME_REFUSAL.search(m)], page.console()


@pytest.mark.parametrize(
    "request_kind",
    ["put-with-preflight", "error-simple"],
)
def test_control_unprotected_json_is_not_readable_cross_origin(
    page: Page, control: Server, request_kind: str
) -> None:
    send: dict[str, Callable[[], dict[str, Any]]] = {
        "put-with-preflight": lambda: put_message(page, control, "t-control"),
        "error-simple": lambda: page.fetch(f"{control.url}/_demo/error/forbidden"),
    }
    result = send[request_kind]()

    assert result == {"error": "TypeError: Failed to fetch"}, result
    page.wait_console(CORS_REFUSAL)
