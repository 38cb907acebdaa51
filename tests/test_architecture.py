"""The package's layering holds: no import cycle (type-only imports included),
and the order the package docstring gives is one the imports respect."""

from __future__ import annotations

import ast
import re
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import synwsgi

PACKAGE = Path(synwsgi.__file__).parent


def _imports() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.glob("*.py")):
        name = path.stem
        if name == "__init__":
            continue
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                if node.level == 1 and node.module:
                    deps.add(node.module.split(".")[0])
                elif node.level == 1:
                    deps.update(alias.name for alias in node.names)
                elif node.module and node.module.startswith("synwsgi."):
                    deps.add(node.module.split(".")[1])
            elif isinstance(node, ast.Import):
                deps.update(a.name.split(".")[1] for a in node.names if a.name.startswith("synwsgi."))
        graph[name] = deps - {name}
    return graph


def test_no_import_cycle_even_type_only() -> None:
    try:
        tuple(TopologicalSorter(_imports()).static_order())
    except CycleError as exc:
        raise AssertionError(f"import cycle: {exc.args[1]}") from None


def test_package_docstring_layers_match_the_imports() -> None:
    doc = synwsgi.__doc__ or ""
    layers_text = doc.split("Modules import only those listed before them", 1)[1]
    layers_text = layers_text.split(":", 1)[1].split("\n\n", 1)[0]
    layers = [re.findall(r"[a-z_]+", layer) for layer in layers_text.split("->")]
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
    readme = (PACKAGE.parent / "docs" / "architecture.rst").read_text(encoding="utf-8")
    table = readme.split("\nLayout\n------\n", 1)[1].split("\n\n", 2)[1]
    order = re.findall(r"^``(\w+)\.py``", table, flags=re.MULTILINE)
    graph = _imports()
    assert sorted(order) == sorted(graph), "the layout table of docs/architecture.rst lists every module once"
    seen: set[str] = set()
    wrong = []
    for module in order:
        wrong += [f"{module} imports {dep}, listed below it" for dep in graph[module] - seen]
        seen.add(module)
    assert not wrong, wrong
