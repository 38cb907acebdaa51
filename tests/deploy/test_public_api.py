"""The package's public surface: `synwsgi.__all__` is exactly what it exports, and each name says what it is.

Classes and functions need a docstring of their own (not one inherited from
a base class); constants need a ``#:`` doc comment where they are defined,
which is where Sphinx's autodoc reads it from.
"""

from __future__ import annotations

import inspect
import pkgutil
import subprocess
import sys
from typing import Any

from sphinx.pycode import ModuleAnalyzer

import synwsgi
from tests.deploy._undocumented import KNOWN_UNDOCUMENTED


def _exported() -> set[str]:
    """Every public name in the package's namespace (submodules are not exports),
    the ones imported on first use included."""
    return {
        name
        for name, value in vars(synwsgi).items()
        if not name.startswith("_") and not inspect.ismodule(value)
    } | set(synwsgi._LAZY)


def test_importing_synwsgi_leaves_prometheus_client_alone() -> None:
    """A gunicorn config sets PROMETHEUS_MULTIPROC_DIR after `import synwsgi`
    (a worker class in synwsgi is imported first): prometheus_client must not be
    imported by then, and the metrics names still import."""
    code = (
        "import sys, synwsgi, synwsgi.pywsgi_worker; "
        "assert 'prometheus_client' not in sys.modules, 'imported'; "
        "from synwsgi import ServerMetrics, MetricsResource; "
        "assert 'prometheus_client' in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def _documented_constants() -> set[str]:
    """Module-level names with a ``#:`` doc comment (or a docstring after them) in any synwsgi module."""
    names: set[str] = set()
    for info in pkgutil.iter_modules(synwsgi.__path__):
        docs = ModuleAnalyzer.for_module(f"synwsgi.{info.name}").find_attr_docs()
        names.update(
            name for (namespace, name), lines in docs.items() if namespace == "" and "".join(lines).strip()
        )
    return names


def _has_docstring(value: Any, constants: set[str], name: str) -> bool:
    if inspect.isclass(value):
        doc = value.__dict__.get("__doc__")
    elif inspect.isroutine(value):
        doc = inspect.unwrap(value).__doc__
    else:
        return name in constants
    return bool(doc and doc.strip())


def _undocumented() -> set[str]:
    constants = _documented_constants()
    return {name for name in synwsgi.__all__ if not _has_docstring(getattr(synwsgi, name), constants, name)}


def test_all_lists_exactly_the_exported_names() -> None:
    assert len(synwsgi.__all__) == len(set(synwsgi.__all__)), "duplicates in __all__"
    listed = set(synwsgi.__all__)
    assert listed == _exported(), {
        "exported but not in __all__": sorted(_exported() - listed),
        "in __all__ but not exported": sorted(listed - _exported()),
    }


def test_star_import_gives_the_public_api() -> None:
    namespace: dict[str, Any] = {}
    exec("from synwsgi import *", namespace)
    assert set(namespace) - {"__builtins__"} == set(synwsgi.__all__)


def test_every_public_name_has_a_docstring() -> None:
    missing = _undocumented() - KNOWN_UNDOCUMENTED
    assert not missing, f"public names without a docstring: {sorted(missing)}"


def test_known_undocumented_names_are_still_undocumented() -> None:
    """Keeps KNOWN_UNDOCUMENTED honest: a name that got its docstring leaves the list."""
    stale = KNOWN_UNDOCUMENTED - _undocumented()
    assert not stale, f"documented now, remove from KNOWN_UNDOCUMENTED: {sorted(stale)}"
