"""The package's layering holds: no import cycle (type-only imports included),
and the order the package docstring gives is one the imports respect."""

from __future__ import annotations

import ast
import re
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import synwsgi

PACKAGE = Path(synwsgi.__file__).parent
ROOT = PACKAGE.parent


def _module_names() -> dict[str, Path]:
    """Every module of the package but the optional add-ons (`contrib`), by
    its name below `synwsgi` (`site`, `_internal.paths`), packages' `__init__`
    left out: they only document their package."""
    return {
        ".".join(path.relative_to(PACKAGE).with_suffix("").parts): path
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.name != "__init__.py" and path.relative_to(PACKAGE).parts[0] != "contrib"
    }


def _imports() -> dict[str, set[str]]:
    modules = _module_names()

    def resolve(target: list[str], names: list[str]) -> set[str]:
        """`from <target> import <names>`: the module itself, or the modules among the names."""
        dotted = ".".join(target)
        if dotted in modules:
            return {dotted}
        return {f"{dotted}.{name}".lstrip(".") for name in names} & set(modules)

    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name.split(".")[:-1]
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                names = [alias.name for alias in node.names]
                if node.level:
                    base = package[: len(package) - (node.level - 1)]
                    deps |= resolve(base + (node.module.split(".") if node.module else []), names)
                elif node.module and node.module.startswith("synwsgi."):
                    deps |= resolve(node.module.split(".")[1:], names)
            elif isinstance(node, ast.Import):
                deps.update(
                    a.name.removeprefix("synwsgi.")
                    for a in node.names
                    if a.name.removeprefix("synwsgi.") in modules
                )
        graph[name] = deps - {name}
    return graph


def test_every_import_of_the_package_is_resolved() -> None:
    """The graph below sees every module a module imports (a typo in the
    resolver would make the layering tests pass on an empty graph)."""
    graph = _imports()
    assert graph["site"] >= {
        "_internal.runtime",
        "body",
        "observability.hooks",
        "policy",
        "request",
    }
    assert graph["_internal.compat"] == {"_internal.headers", "_internal.paths", "config"}


def test_no_import_cycle_even_type_only() -> None:
    try:
        tuple(TopologicalSorter(_imports()).static_order())
    except CycleError as exc:
        raise AssertionError(f"import cycle: {exc.args[1]}") from None


def test_package_docstring_layers_match_the_imports() -> None:
    doc = synwsgi.__doc__ or ""
    layers_text = doc.split("Modules import only those listed before them", 1)[1]
    layers_text = layers_text.split(":", 1)[1].split("\n\n", 1)[0]
    layers = [re.findall(r"[a-z_]+(?:\.[a-z_]+)*", layer) for layer in layers_text.split("->")]
    position = {module: i for i, layer in enumerate(layers) for module in layer}
    graph = _imports()
    assert set(position) == set(graph), "the docstring lists every module once"
    wrong = [
        f"{module} (layer {position[module]}) imports {dep} (layer {position[dep]})"
        for module, deps in graph.items()
        for dep in deps
        if position[dep] >= position[module]
    ]
    assert not wrong, wrong


def test_readme_layout_lists_modules_in_an_order_the_imports_respect() -> None:
    readme = (ROOT / "docs" / "architecture.rst").read_text(encoding="utf-8")
    section = readme.split("\nLayout\n------\n", 1)[1]
    table = section[section.index("\n==") :].split("\n\n", 1)[0]
    order = [path.replace("/", ".") for path in re.findall(r"^``([\w/]+)\.py``", table, flags=re.MULTILINE)]
    graph = _imports()
    assert sorted(order) == sorted(graph), "the layout table of docs/architecture.rst lists every module once"
    seen: set[str] = set()
    wrong = []
    for module in order:
        wrong += [f"{module} imports {dep}, listed below it" for dep in graph[module] - seen]
        seen.add(module)
    assert not wrong, wrong


def test_what_users_copy_from_never_imports_the_internal_package() -> None:
    """`synwsgi._internal` is not API: the examples, the docs, the README and
    the repository's own app and configs reach everything through public
    modules, so a user who copies from them never depends on it."""
    places = [ROOT / "README.rst", ROOT / "wsgi.py", ROOT / "gunicorn.conf.py"]
    for folder, pattern in (("examples", "*.py"), ("docs", "*.rst"), ("stress", "*.py")):
        places += sorted((ROOT / folder).rglob(pattern))
    assert len(places) > 20
    users = [
        str(path.relative_to(ROOT))
        for path in places
        if "synwsgi._internal" in path.read_text(encoding="utf-8")
    ]
    assert not users, users
