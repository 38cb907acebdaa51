"""Sphinx configuration for synwsgi's documentation.

Two pages are partly generated at build time so that they cannot drift:
``api.rst`` gets one section per module of the package (a new module shows
up without editing the page), and ``configuration.rst`` gets the reference of
every `ServerConfig` field and environment variable (``docs/_configref.py``).

There is no ``doctest_global_setup``: every example imports what it uses,
visibly, so that a reader's copy runs as the doctest builder runs it.
"""

from __future__ import annotations

import inspect
import logging
import pkgutil
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the showcase `wsgi.py`, for the pages that import it
sys.path.insert(0, str(Path(__file__).resolve().parent))  # _configref

import synwsgi  # noqa: E402 - after the path is set

project = "synwsgi"
author = "synwsgi contributors"
copyright = "synwsgi contributors, Apache-2.0"
release = synwsgi.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.doctest",
]
exclude_patterns = ["_build"]
default_role = "py:obj"  # `Name` in a docstring links to the object when it can
highlight_language = "python3"
html_theme = "alabaster"
html_title = f"synwsgi {release}"
html_static_path: list[str] = []
# Wide enough for the nginx and systemd files without scrolling.
html_theme_options = {"page_width": "1240px", "sidebar_width": "250px"}

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_default_options = {"show-inheritance": True}
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_ivar = True

API_PLACEHOLDER = ".. synwsgi-api-modules::"
CONFIG_PLACEHOLDER = ".. synwsgi-configuration-reference::"
HOMESERVER_ENV_PLACEHOLDER = ".. synwsgi-homeserver-environment::"


def _public_modules() -> list[str]:
    """The public modules: the top level's and ``observability``'s; nothing
    under a ``_`` name (``_internal`` is not API). ``contrib`` gets only its
    package's section: its add-ons need their extras, and have their own page."""
    import synwsgi.observability

    return sorted(
        f"{package.__name__}.{info.name}"
        for package in (synwsgi, synwsgi.observability)
        for info in pkgutil.iter_modules(package.__path__)
        if not info.name.startswith("_")
    )


def _api_sections() -> str:
    exported = set(getattr(synwsgi, "__all__", ())) or {
        name
        for name, value in vars(synwsgi).items()
        if not name.startswith("_") and not inspect.ismodule(value)
    }
    parts = []
    for module in _public_modules():
        title = f"``{module}``"
        parts += [
            title,
            "-" * len(title),
            "",
            f".. automodule:: {module}",
            "   :members:",
            "   :undoc-members:",
        ]
        # Names exported by the package are documented once, under `synwsgi`.
        # Constants stay in their module's section: autodoc reads their `#:`
        # comment there, and would not find it from the package.
        own = sorted(
            name
            for name in exported
            if (
                inspect.isclass(value := getattr(sys.modules.get(module), name, None))
                or inspect.isroutine(value)
            )
        )
        if own:
            parts.append(f"   :exclude-members: {', '.join(own)}")
        parts.append("")
    return "\n".join(parts)


def _fill_placeholders(app: Any, docname: str, source: list[str]) -> None:
    if API_PLACEHOLDER in source[0]:
        import importlib

        for module in _public_modules():
            importlib.import_module(module)
        source[0] = source[0].replace(API_PLACEHOLDER, _api_sections())
    if CONFIG_PLACEHOLDER in source[0]:
        from _configref import configuration_reference

        source[0] = source[0].replace(CONFIG_PLACEHOLDER, configuration_reference())
    if HOMESERVER_ENV_PLACEHOLDER in source[0]:
        from _configref import homeserver_environment

        source[0] = source[0].replace(HOMESERVER_ENV_PLACEHOLDER, homeserver_environment())


# The docstrings write code Markdown-style, `name`, and sometimes glue a
# plural on (`re.Pattern`s); reStructuredText wants a space or punctuation
# after the closing backtick, and an escaped space ("\\ ") renders as nothing.
_GLUED_BACKTICK = re.compile(r"(?<![`\w])(`[^`\n]+`)(?=[A-Za-z0-9])")


def _docstring_markup(app: Any, what: str, name: str, obj: Any, options: Any, lines: list[str]) -> None:
    lines[:] = [_GLUED_BACKTICK.sub(r"\1\\ ", line) for line in lines]


def _skip_loggers(app: Any, what: str, name: str, obj: Any, skip: bool, options: Any) -> bool | None:
    """Module-level `logger` objects are not API."""
    return True if isinstance(obj, logging.Logger) else None


def setup(app: Any) -> None:
    app.connect("autodoc-skip-member", _skip_loggers)
    app.connect("source-read", _fill_placeholders)
    app.connect("autodoc-process-docstring", _docstring_markup)
