"""The run directory's layout has one home (simclr.rundir): no other module spells its names."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

from simclr.rundir import RunDir

SRC = Path(__file__).resolve().parents[1] / "src" / "simclr"
LAYOUT_MODULE = SRC / "rundir.py"

# Every file or folder name inside a run directory; a string literal outside rundir.py that contains one
# (as a whole name) is a second home for the layout.
RUN_DIR_NAMES = re.compile(
    r"(?<![\w.-])("
    r"config\.yaml|metrics\.csv|train\.log|last\.ckpt|backbone\.safetensors|metrics\.json|report\.html"
    r"|sweep-cell\.json|autoencoder\.safetensors|reconstructions\.png|mlflow\.db|eval-random-weights|classifier\.safetensors"
    r")(?![\w-])"
)
RUN_DIR_FOLDERS = {"eval", "checkpoints", "plots", "features", "tensorboard"}


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the string nodes that are docstrings (documentation may name the files)."""
    found: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
        if isinstance(node, ast.ClassDef | ast.Module):  # attribute docstrings: a string after an assignment
            for before, after in zip(node.body, node.body[1:], strict=False):
                is_doc = isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
                if isinstance(before, ast.AnnAssign | ast.Assign) and is_doc:
                    found.add(id(after.value))
    return found


def _layout_literals(source: str, label: str) -> list[str]:
    tree = ast.parse(source)
    docs = _docstrings(tree)
    hits = []
    for node in ast.walk(tree):
        is_text = isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs
        if is_text and RUN_DIR_NAMES.search(node.value):
            hits.append(f"{label}:{node.lineno}: {node.value!r}")
        # a path built from a bare folder name: run_dir / "eval", Path("checkpoints")
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            right = node.right
            if isinstance(right, ast.Constant) and right.value in RUN_DIR_FOLDERS:
                hits.append(f"{label}:{node.lineno}: / {right.value!r}")
    return hits


def test_no_module_but_rundir_spells_the_run_directory_layout() -> None:
    modules = sorted(p for p in SRC.rglob("*.py") if p != LAYOUT_MODULE)
    assert len(modules) > 50
    hits = [hit for module in modules for hit in _layout_literals(module.read_text(), str(module.relative_to(SRC)))]
    assert hits == []


def test_the_check_finds_a_spelled_name() -> None:
    source = '"""docstring naming metrics.csv is fine."""\nPATH = run_dir / "eval"\nNAME = "backbone.safetensors"\n'
    hits = _layout_literals(source, "probe.py")
    assert len(hits) == 2
    assert any("'eval'" in hit for hit in hits) and any("backbone.safetensors" in hit for hit in hits)
    assert _layout_literals('NAME = "simclr-report.html"\n', "probe.py") == []  # not a run-directory name


def test_rundir_imports_no_torch() -> None:
    code = "import sys, simclr.rundir; sys.exit(1 if 'torch' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_layout(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    assert run.last_checkpoint == tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert run.eval.metrics == tmp_path / "run" / "eval" / "metrics.json"
    assert run.eval.features.parent == run.eval.plots.parent == run.eval.path
    assert run.random_weights_eval.path != run.eval.path
    assert not run.holds_run()
    run.path.mkdir()
    run.write_config("dataset: cifar10\n")
    assert run.holds_run() and run.read_config_values() == {"dataset": "cifar10"}
    assert [p.name for p in run.path.iterdir()] == ["config.yaml"]  # no temporary left behind
