"""The package's import graph: no loops at any level, and every import points down the layers that
docs/ARCHITECTURE.md lists.

Every import counts: at the top of a module, inside a function, and under ``if TYPE_CHECKING``. A relative
import is resolved to the module it names; ``from simclr.data import store`` names ``simclr.data.store``.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
ARCHITECTURE = ROOT / "docs" / "ARCHITECTURE.md"


@dataclass(frozen=True)
class Import:
    source: str
    target: str
    line: int
    in_function: bool


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _targets(node: ast.Import | ast.ImportFrom, module: str, is_package: bool, modules: set[str]) -> set[str]:
    """The simclr modules an import statement names (its deepest existing module for each name)."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:
            parts = module.split(".") if is_package else module.split(".")[:-1]
            parts = parts[: len(parts) - (node.level - 1)]
            base = ".".join(parts + ([node.module] if node.module else []))
        names = [f"{base}.{alias.name}" for alias in node.names]
    found = set()
    for name in names:
        while name not in modules and "." in name:
            name = name.rsplit(".", 1)[0]
        if name in modules:
            found.add(name)
    return found


def imports_of(path: Path, modules: set[str]) -> list[Import]:
    module = module_name(path)
    found: list[Import] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inside = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            if isinstance(child, ast.Import | ast.ImportFrom):
                for target in _targets(child, module, path.name == "__init__.py", modules):
                    if target != module:
                        found.append(Import(module, target, child.lineno, inside))
            visit(child, inside)

    visit(ast.parse(path.read_text()), False)
    return found


def all_imports() -> list[Import]:
    paths = sorted(SRC.rglob("*.py"))
    modules = {module_name(path) for path in paths}
    return [found for path in paths for found in imports_of(path, modules)]


def import_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {module_name(path): set() for path in SRC.rglob("*.py")}
    for found in all_imports():
        graph[found.source].add(found.target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def documented_layers(text: str) -> list[list[str]]:
    """The module names of each row of the "## Layers" table, bottom layer first."""
    section = text.split("## Layers", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if re.match(r"^\| \d+ ", line)]
    return [re.findall(r"`(simclr[\w.]*)`", row.split("|")[2]) for row in rows]


def layer_of(module: str, layers: list[list[str]]) -> int | None:
    """The layer whose most specific listed name is ``module`` or a package above it."""
    best: tuple[int, int] | None = None  # (name length, layer)
    for number, names in enumerate(layers, start=1):
        for name in names:
            if (module == name or module.startswith(name + ".")) and (best is None or len(name) > best[0]):
                best = (len(name), number)
    return best[1] if best else None


def test_no_import_cycles() -> None:
    graph = import_graph()
    assert "simclr.training.pretrain" in graph and len(graph) > 60
    assert cycles(graph) == []


def test_imports_point_down_the_documented_layers() -> None:
    layers = documented_layers(ARCHITECTURE.read_text())
    assert len(layers) >= 8 and layers[0][0] == "simclr.errors"
    graph = import_graph()
    unplaced = sorted(module for module in graph if layer_of(module, layers) is None)
    assert unplaced == [], "modules missing from docs/ARCHITECTURE.md's layer table"
    upward = [
        f"{found.source} (layer {layer_of(found.source, layers)}) imports {found.target} "
        f"(layer {layer_of(found.target, layers)}) at line {found.line}"
        for found in all_imports()
        if layer_of(found.target, layers) > layer_of(found.source, layers)  # type: ignore[operator]
    ]
    assert upward == []


def test_function_level_imports_say_why() -> None:
    """A function-level import keeps ``simclr --help`` / ``import simclr`` light; the line (or the one above it)
    says so, so it is not mistaken for a way around a loop."""
    silent = []
    for found in all_imports():
        if not found.in_function or found.source.startswith(("simclr.commands", "simclr.cli")):
            continue
        path = SRC / (found.source.replace(".", "/") + ".py")
        if not path.exists():
            path = SRC / found.source.replace(".", "/") / "__init__.py"
        lines = path.read_text().splitlines()
        nearby = " ".join(lines[max(0, found.line - 3) : found.line + 1])
        if "#" not in nearby:
            silent.append(f"{found.source}:{found.line} imports {found.target}")
    assert silent == []


def test_package_inits_reexport_nothing() -> None:
    """One home per name: a sub-package's ``__init__`` imports nothing from its own modules (a package that
    holds code of its own, as ``simclr.recipes`` does, may import what that code uses)."""
    reexporting = []
    for init in SRC.rglob("__init__.py"):
        package = module_name(init)
        if package == "simclr":  # the public API, loaded lazily
            continue
        for node in ast.walk(ast.parse(init.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.level > 0 or (node.module or "").startswith(package)):
                reexporting.append(f"{package} imports from {node.module}")
    assert reexporting == []


def test_the_checks_find_what_they_look_for() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    layers = [["simclr.errors"], ["simclr.data"], ["simclr.data.catalog", "simclr.config"]]
    assert layer_of("simclr.data.store", layers) == 2 and layer_of("simclr.data.catalog", layers) == 3
    assert layer_of("simclr.cli", layers) is None
    doc = "## Layers\n\n| layer | modules |\n|---|---|\n| 1 a | `simclr.errors`, `simclr.x` |\n| 2 b | `simclr.y` |\n"
    assert documented_layers(doc) == [["simclr.errors", "simclr.x"], ["simclr.y"]]


@pytest.mark.parametrize("entry", ["import simclr", "from simclr.cli import build_parser; build_parser()"])
def test_the_command_line_and_the_package_load_no_heavy_library(entry: str) -> None:
    """``simclr --help`` builds every sub-command's parser without torch, numpy or PIL."""
    code = f"import sys; {entry}; print(sorted(m for m in ('torch', 'numpy', 'PIL') if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]"
