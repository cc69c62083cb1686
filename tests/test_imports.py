"""The package's import graph: dependencies point down the data flow, so no two modules import each other.

Only imports executed when a module is loaded count (module level, outside ``if TYPE_CHECKING``); a
function may import a registry lazily (the config validates names against the dataset and model
registries) without making a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _load_time_imports(tree: ast.Module, modules: set[str]) -> set[str]:
    found: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        for inner in ast.walk(node):
            if isinstance(inner, ast.ImportFrom) and inner.module and inner.module.startswith("simclr"):
                for alias in inner.names:
                    child = f"{inner.module}.{alias.name}"
                    found.add(child if child in modules else inner.module)
            elif isinstance(inner, ast.Import):
                found.update(alias.name for alias in inner.names if alias.name.startswith("simclr"))
    return found


def _function_bodies_skipped(tree: ast.Module) -> ast.Module:
    """The module with every function body emptied, so imports inside functions are not seen."""
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            node.body = [ast.Pass()]
    return tree


def import_graph() -> dict[str, set[str]]:
    paths = {_module_name(path): path for path in SRC.rglob("*.py")}
    modules = set(paths)
    return {
        name: _load_time_imports(_function_bodies_skipped(ast.parse(path.read_text())), modules) & modules
        for name, path in paths.items()
    }


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycles() -> None:
    graph = import_graph()
    assert "simclr.training.pretrain" in graph and len(graph) > 60
    assert cycles(graph) == []


def test_the_cycle_finder_finds_one() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_layers() -> None:
    """Evaluation never imports training, nothing imports the CLI, and the run-directory layout and the
    configs import no torch-heavy layer at load time."""
    graph = import_graph()
    for module, targets in graph.items():
        if module.startswith("simclr.evaluation"):
            assert not any(t.startswith("simclr.training") for t in targets), module
        if not module.startswith(("simclr.cli", "simclr.commands", "simclr.__main__")):
            assert not any(t.startswith(("simclr.cli", "simclr.commands")) for t in targets), module
    for light in ("simclr.rundir", "simclr.config", "simclr.evaluation.options"):
        assert graph[light] <= {"simclr.errors", "simclr.config", "simclr.rundir"}, light
