"""Rooms of a readable size: no module over 500 lines unless its docstring says why, no function over 80."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "simclr"
MODULE_LINES = 500
FUNCTION_LINES = 80
# a module's docstring that holds this phrase says why the module is longer
LONG_MODULE_NOTE = "longer than 500 lines because"


def long_modules() -> list[str]:
    found = []
    for path in sorted(SRC.rglob("*.py")):
        lines = len(path.read_text().splitlines())
        docstring = ast.get_docstring(ast.parse(path.read_text())) or ""
        if lines > MODULE_LINES and LONG_MODULE_NOTE not in " ".join(docstring.split()):
            found.append(f"{path.relative_to(SRC)}: {lines} lines")
    return found


def long_functions() -> list[str]:
    found = []
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > FUNCTION_LINES:
                    found.append(f"{path.relative_to(SRC)}:{node.lineno} {node.name}: {length} lines")
    return found


def test_no_module_over_500_lines_without_a_reason() -> None:
    assert long_modules() == []


def test_no_function_over_80_lines() -> None:
    assert long_functions() == []
