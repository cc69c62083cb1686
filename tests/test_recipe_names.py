"""Recipes and sweeps are found by name from any folder; a path still wins; an unknown name lists the names."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from simclr.cli import main
from simclr.errors import UserError
from simclr.recipes import RECIPES_DIR, RENAMED_RECIPES, find_recipe, recipe_names


def test_names_find_the_shipped_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert "lightly-cifar10-resnet18-200ep" in recipe_names() and recipe_names(sweeps=True) == ["simclr-ae"]
    assert find_recipe("sthalles-cifar10-resnet18") == RECIPES_DIR / "sthalles-cifar10-resnet18.yaml"
    assert find_recipe("sthalles-cifar10-resnet18.yaml") == RECIPES_DIR / "sthalles-cifar10-resnet18.yaml"
    assert find_recipe("simclr-ae", sweeps=True) == RECIPES_DIR / "sweeps" / "simclr-ae.yaml"
    own = tmp_path / "sthalles-cifar10-resnet18.yaml"
    own.write_text("epochs: 1\n")
    assert find_recipe("sthalles-cifar10-resnet18.yaml").resolve() == own  # a file of one's own wins over the name


def test_unknown_name_is_one_line_with_the_names() -> None:
    with pytest.raises(UserError, match=r"no-such is neither a file nor a shipped recipe; .*dkobak-cifar10") as info:
        find_recipe("no-such")
    assert "\n" not in str(info.value)
    with pytest.raises(UserError, match="shipped recipe"):
        find_recipe("elsewhere/sthalles-cifar10-resnet18")  # a path is never taken for a name


def test_pretrain_and_sweep_take_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["pretrain", "--config", "lightly-cifar10-resnet18-200ep", "--print-config"]) == 0
    assert "epochs: 200" in capsys.readouterr().out
    assert main(["sweep", "simclr-ae", "--out", str(tmp_path), "--dry-run"]) == 0
    assert main(["pretrain", "--config", "nope", "--print-config"]) == 2
    assert "nope is neither a file nor a shipped recipe" in capsys.readouterr().err


def test_old_names_resolve_with_one_deprecation_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)
    for old, new in RENAMED_RECIPES.items():
        assert (RECIPES_DIR / f"{new}.yaml").is_file(), f"{old} points to {new}, which is not shipped"
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="simclr"):
            assert find_recipe(old) == find_recipe(f"{old}.yaml") == RECIPES_DIR / f"{new}.yaml"
        lines = [record.getMessage() for record in caplog.records]
        assert len(lines) == 2 and f"recipe {old} is now called {new}" in lines[0]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="simclr"):
        find_recipe("sthalles-cifar10-resnet18")
    assert caplog.records == []  # the new names say nothing


def test_the_alias_table_of_sources_md_matches_the_code() -> None:
    sources = (Path(__file__).resolve().parents[1] / "docs" / "SOURCES.md").read_text()
    for old, new in RENAMED_RECIPES.items():
        assert f"| `{old}` | `{new}` |" in sources, f"docs/SOURCES.md lacks the alias row {old} -> {new}"
