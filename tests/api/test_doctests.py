"""Every ``>>>`` example in the package's docstrings runs, so the documentation cannot drift from the code."""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"


def modules_with_examples() -> list[str]:
    """The modules under src/simclr whose source holds a docstring example (found by text, without importing)."""
    found = []
    for path in sorted((SRC / "simclr").rglob("*.py")):
        if ">>>" in path.read_text():
            parts = path.relative_to(SRC).with_suffix("").parts
            found.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return found


def test_the_package_has_examples() -> None:
    assert "simclr.models.backbones" in modules_with_examples()


@pytest.mark.parametrize("name", modules_with_examples())
def test_docstring_examples_run(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.attempted > 0, f"{name}: its '>>>' text is not in a docstring doctest finds"
    assert result.failed == 0, f"{name}: {result.failed} of {result.attempted} examples failed (output above)"
