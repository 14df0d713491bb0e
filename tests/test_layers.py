"""docs/development.md's Layers table is the package's dependency rule: every module has one layer, no module imports
from a higher layer (not even inside a function), and the modules' imports form no cycle.

The imports are read from the source (``ast``), at every depth: ``import`` and ``from ... import`` statements
anywhere in a module (functions, ``try`` blocks, ``if TYPE_CHECKING``), and calls whose first argument is a string
constant naming a module of the package (``importlib.import_module("depth_strategies.x")``, the console scripts'
``_run("depth_strategies.x")``)."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from tests.conftest import REPO

PACKAGE = "depth_strategies"
PACKAGE_DIR = REPO / PACKAGE
ROW = re.compile(r"^\|\s*(\d+)\s*\|\s*([^|]+?)\s*\|([^|]*)\|")


@dataclass(frozen=True)
class Layer:
    number: int
    name: str
    paths: Tuple[str, ...]
    """Module files (``cli.py``) and folders (``core/``), relative to the package."""


@dataclass(frozen=True)
class Import:
    importer: str
    imported: str
    line: int


def layer_table(page: Optional[str] = None) -> List[Layer]:
    """The rows of the table under ``## Layers`` in docs/development.md, lowest layer first."""
    page = page if page is not None else (REPO / "docs" / "development.md").read_text()
    section = page[page.index("## Layers\n"):]
    section = section[:section.find("\n## ", 1)] if "\n## " in section[1:] else section
    layers = [Layer(int(m.group(1)), m.group(2), tuple(re.findall(r"`([^`]+)`", m.group(3))))
              for m in map(ROW.match, section.splitlines()) if m]
    assert [layer.number for layer in layers] == list(range(1, len(layers) + 1)), \
        "docs/development.md: the Layers table's rows must be numbered 1, 2, ... from the lowest layer"
    return layers


def modules(package_dir: Path = PACKAGE_DIR, package: str = PACKAGE) -> Dict[str, Path]:
    """Every module of the package by dotted name (a package's ``__init__.py`` under the package's name)."""
    found = {}
    for path in sorted(package_dir.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        parts = list(path.relative_to(package_dir).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join([package, *parts])] = path
    return found


def layer_of(path: Path, layers: List[Layer], package_dir: Path = PACKAGE_DIR) -> List[Layer]:
    """The layers whose rows name ``path`` (exactly one, in a consistent table)."""
    rel = path.relative_to(package_dir).as_posix()
    return [layer for layer in layers
            if any(rel == p or (p.endswith("/") and rel.startswith(p)) for p in layer.paths)]


def _resolve(name: str, known: Dict[str, Path]) -> Optional[str]:
    """The package module that importing ``name`` runs: its longest prefix that is a module; None outside."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in known:
            return candidate
    return None


def imports_of(module: str, path: Path, known: Dict[str, Path], package: str = PACKAGE) -> List[Import]:
    """Every import of a package module by ``module``, wherever it is in the file."""
    is_package = path.name == "__init__.py"
    found: List[Import] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        names: List[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from the module's package, one level up per extra dot
                base = module.split(".")
                base = base[:len(base) - node.level + (1 if is_package else 0)]
                source = ".".join([*base, node.module] if node.module else base)
            else:
                source = node.module or ""
            # ``from pkg import sub`` imports the submodule where there is one, else takes a name from ``pkg``
            names = [f"{source}.{alias.name}" if f"{source}.{alias.name}" in known else source
                     for alias in node.names]
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str) and re.fullmatch(rf"{package}(\.\w+)*", node.args[0].value):
            names = [node.args[0].value]  # an import by name
        for name in names:
            target = _resolve(name, known)
            if target is not None and target != module:
                found.append(Import(module, target, node.lineno))
    return found


def import_graph(package_dir: Path = PACKAGE_DIR, package: str = PACKAGE) -> List[Import]:
    known = modules(package_dir, package)
    return [imp for module, path in known.items() for imp in imports_of(module, path, known, package)]


def layer_violations(layers: List[Layer], package_dir: Path = PACKAGE_DIR, package: str = PACKAGE) -> List[str]:
    known = modules(package_dir, package)
    level = {module: layer_of(path, layers, package_dir)[0] for module, path in known.items()}
    return [
        f"{known[imp.importer].relative_to(package_dir.parent)}:{imp.line}: {imp.importer} "
        f"({level[imp.importer].name}, layer {level[imp.importer].number}) imports {imp.imported} "
        f"({level[imp.imported].name}, layer {level[imp.imported].number})"
        for imp in import_graph(package_dir, package)
        if level[imp.imported].number > level[imp.importer].number
    ]


def find_cycle(edges: List[Import]) -> Optional[List[Import]]:
    """One cycle of the import graph as its edges in order, or None when the graph is acyclic (depth-first search;
    a back edge to a module on the current path closes a cycle)."""
    out: Dict[str, List[Import]] = {}
    for edge in edges:
        out.setdefault(edge.importer, []).append(edge)
    state: Dict[str, int] = {}  # 1: on the current path, 2: done
    path: List[Import] = []

    def visit(node: str) -> Optional[List[Import]]:
        state[node] = 1
        for edge in out.get(node, []):
            if state.get(edge.imported) == 1:
                start = next((i for i, e in enumerate(path) if e.importer == edge.imported), len(path))
                return [*path[start:], edge]
            if edge.imported not in state:
                path.append(edge)
                cycle = visit(edge.imported)
                if cycle:
                    return cycle
                path.pop()
        state[node] = 2
        return None

    for node in sorted(out):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def describe(cycle: List[Import]) -> str:
    return " -> ".join([cycle[0].importer, *(f"{e.imported} (line {e.line} of {e.importer})" for e in cycle)])


# ------------------------------------------------------------------------------------------- the package
def test_every_module_of_the_package_is_in_exactly_one_layer_of_the_table():
    layers = layer_table()
    assert len(layers) >= 2
    wrong = {str(path.relative_to(PACKAGE_DIR)): [layer.name for layer in layer_of(path, layers)]
             for path in modules().values() if len(layer_of(path, layers)) != 1}
    assert not wrong, f"modules in no layer or in several of docs/development.md's Layers table: {wrong}"
    named = {p for layer in layers for p in layer.paths}
    present = {p for p in named if (PACKAGE_DIR / p).exists()}
    assert named == present, f"the Layers table names what the package lacks: {named - present}"


def test_no_module_imports_from_a_higher_layer():
    violations = layer_violations(layer_table())
    assert not violations, "imports from a higher layer (docs/development.md, Layers):\n" + "\n".join(violations)


def test_the_modules_of_the_package_import_each_other_without_a_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, f"import cycle: {describe(cycle)}"


# ------------------------------------------------------------------------------------------- the checks themselves
def _package(root: Path, files: Dict[str, str]) -> Path:
    for name, text in files.items():
        (root / "pkg" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "pkg" / name).write_text(text)
    return root / "pkg"


def test_the_checks_see_function_level_relative_and_by_name_imports(tmp_path):
    package = _package(tmp_path, {
        "__init__.py": "",
        "low/__init__.py": "",
        "low/a.py": "def f():\n    from pkg.high import b\n",  # upward, inside a function
        "low/c.py": "from . import a\n",  # relative
        "high/__init__.py": "",
        "high/b.py": "import importlib\n\nimportlib.import_module('pkg.low.c')\n",  # by name
    })
    layers = layer_table("## Layers\n\n| Layer | Name | Modules |\n|--|--|--|\n| 1 | low | `low/`, `__init__.py` |\n"
                         "| 2 | high | `high/` |\n")
    assert sorted((i.importer, i.imported, i.line) for i in import_graph(package, "pkg")) == [
        ("pkg.high.b", "pkg.low.c", 3), ("pkg.low.a", "pkg.high.b", 2), ("pkg.low.c", "pkg.low.a", 1)]
    assert layer_violations(layers, package, "pkg") == [
        "pkg/low/a.py:2: pkg.low.a (low, layer 1) imports pkg.high.b (high, layer 2)"]
    assert describe(find_cycle(import_graph(package, "pkg"))) == (
        "pkg.high.b -> pkg.low.c (line 3 of pkg.high.b) -> pkg.low.a (line 1 of pkg.low.c) "
        "-> pkg.high.b (line 2 of pkg.low.a)")


def test_find_cycle_tells_an_acyclic_graph_from_a_cyclic_one():
    edges = [Import("a", "b", 1), Import("b", "c", 1), Import("a", "c", 2)]
    assert find_cycle(edges) is None
    assert find_cycle([*edges, Import("c", "a", 7)]) is not None
