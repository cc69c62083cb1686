"""The wheel: built from a copy of the sources, it holds the package, the named recipes, py.typed and the
license, is named simclr-kit, and its ``simclr`` entry point runs a recipe by name from the installed files."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RECIPES = REPO / "src" / "simclr" / "recipes"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built offline (no isolation: the installed setuptools) from a copy, so the build leaves no
    build/ or egg-info in the working tree."""
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    out = tmp_path_factory.mktemp("wheel")
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), "."]
    done = subprocess.run(command, cwd=source, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    (built,) = out.glob("*.whl")
    return built


def test_wheel_is_simclr_kit_with_recipes_license_and_types(wheel: Path) -> None:
    assert wheel.name.startswith("simclr_kit-0.1.0-py3-none-any")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {f"simclr/recipes/{p.relative_to(RECIPES)}" for p in RECIPES.rglob("*.yaml")}
    assert len(shipped) >= 18 and shipped <= names, sorted(shipped - names)
    assert {"simclr/py.typed", "simclr/cli.py", "simclr/recipes/__init__.py"} <= names
    dist_info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
    assert any(n.startswith(f"{dist_info}/licenses/LICENSE") for n in names)
    metadata = zipfile.ZipFile(wheel).read(f"{dist_info}/METADATA").decode()
    assert "Name: simclr-kit" in metadata and "Provides-Extra: parquet" in metadata
    entry_points = configparser.ConfigParser()
    entry_points.read_string(zipfile.ZipFile(wheel).read(f"{dist_info}/entry_points.txt").decode())
    assert entry_points["console_scripts"]["simclr"] == "simclr.cli:entry_point"


def test_the_entry_point_runs_a_recipe_by_name_from_the_wheel(wheel: Path, tmp_path: Path) -> None:
    zipfile.ZipFile(wheel).extractall(tmp_path / "site")
    code = (
        "import pathlib, sys, simclr; from simclr.cli import entry_point; "
        "assert pathlib.Path(simclr.__file__).is_relative_to(pathlib.Path.cwd()), simclr.__file__; "
        "sys.argv[0] = 'simclr'; entry_point()"
    )
    args = ["pretrain", "--config", "lightly-cifar10-resnet18-200ep", "--print-config"]
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=tmp_path,  # not the repository: the recipe must come from the installed files
        env={"PYTHONPATH": str(tmp_path / "site"), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "epochs: 200" in done.stdout and "dataset: cifar10" in done.stdout
