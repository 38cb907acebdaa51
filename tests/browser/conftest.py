"""Every test under this directory gets the ``browser`` marker.

``pytest -m "not browser"`` leaves them out; they need Debian's chromium,
chromedriver and selenium (``bash .ci/install-browser.sh``), and *fail*
without them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

_HERE = Path(__file__).resolve().parent


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "browser: drives Debian's headless chromium against real servers on 127.0.0.1"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.browser)
