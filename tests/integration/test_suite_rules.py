"""The suite's own rules: a missing app module is a failure, never a skip."""

from __future__ import annotations

import pytest

from .conftest import _require_app_module

pytestmark = pytest.mark.integration


def test_missing_app_module_fails_instead_of_skipping() -> None:
    with pytest.raises(pytest.fail.Exception, match="not found"):
        _require_app_module("tests.integration._no_such_app:app")
    with pytest.raises(pytest.fail.Exception, match="not found"):
        _require_app_module("no_such_top_level_module:app")


@pytest.mark.parametrize(
    "app",
    [
        "wsgi:app",
        "tests.integration._failing_app:app",
        "tests.integration._limited_app:app",
        "tests.integration._logged_app:app",
        "tests.integration._bigjson_app:app",
        "tests.integration._sample_app:app",
        "tests.integration._pipeline_app:app",
    ],
)
def test_app_modules_used_by_the_suite_exist(app: str) -> None:
    _require_app_module(app)
