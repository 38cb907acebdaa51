"""Fixtures for the unit/behaviour tests (helpers live in `_helpers.py`)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# The project root holds `synwsgi/` and the showcase `wsgi.py`: make both
# importable however pytest was started (installed or not, from any directory).
PROJECT_ROOT = Path(__file__).resolve().parent.parent
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))


@pytest.fixture
def request_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """`caplog` capturing synwsgi's records from INFO up."""
    caplog.set_level("INFO", logger="synwsgi")
    return caplog
