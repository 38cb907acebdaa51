"""Fixtures for the homeserver example and the notifier: PostgreSQL, real servers."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]
for path in (PROJECT_ROOT, PROJECT_ROOT / "tests"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from _postgres import PostgresServer, postgres_binaries_or_fail, running_postgres  # noqa: E402


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One throwaway PostgreSQL for the session (fails under CI when missing)."""
    bindir = postgres_binaries_or_fail()
    with running_postgres(bindir) as server:
        yield server
