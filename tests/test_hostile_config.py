"""Hostile config files (issue 14): a YAML alias bomb, bytes that are not UTF-8, nesting and values too big to
show. Each must end as one line and exit code 2, fast, without writing anything."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from simclr.cli import main
from simclr.config import PretrainConfig
from simclr.errors import UserError
from simclr.settings import build_settings, read_yaml


def alias_bomb() -> str:
    """About 400 bytes of YAML whose last key expands to 9**9 (387 million) strings."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{level}: &a{level} [{', '.join([f'*a{level - 1}'] * 9)}]" for level in range(1, 9)]
    return "\n".join(lines) + "\n"


def fake_run(tmp_path: Path, config_text: str) -> Path:
    """A run directory with the given config.yaml and a placeholder backbone (the config is read first)."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(config_text)
    (run / "backbone.safetensors").write_bytes(b"placeholder")
    return run


def files_under(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in folder.rglob("*") if path.is_file()}


def run_fails_fast(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run the CLI twice (the first run pays for importing torch), check exit code 2, the second run within a
    second, and a one-line message; return that line."""
    assert main(argv) == 2
    capsys.readouterr()
    start = time.perf_counter()
    assert main(argv) == 2
    assert time.perf_counter() - start < 1.0
    err = capsys.readouterr().err.strip()
    assert err.startswith("simclr: error: ") and "\n" not in err and "Traceback" not in err
    return err


def test_alias_bomb_as_config_flag_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recipe = tmp_path / "bomb.yaml"
    recipe.write_text(alias_bomb())
    err = run_fails_fast(["pretrain", "--config", str(recipe), "--print-config"], capsys)
    assert f"config file {recipe} uses YAML anchors/aliases" in err and "write the values out" in err
    assert sorted(path.name for path in tmp_path.iterdir()) == ["bomb.yaml"]


@pytest.mark.parametrize("command", ["report", "evaluate"])
def test_alias_bomb_in_a_run_config_is_refused(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = fake_run(tmp_path, alias_bomb())
    before = files_under(tmp_path)
    err = run_fails_fast([command, str(run)], capsys)
    assert "uses YAML anchors/aliases" in err and str(run / "config.yaml") in err
    assert files_under(tmp_path) == before


def test_non_utf8_config_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recipe = tmp_path / "latin1.yaml"
    recipe.write_bytes("dataset: cifar10\nout: caf\xe9\n".encode("latin-1"))
    err = run_fails_fast(["pretrain", "--config", str(recipe), "--print-config"], capsys)
    assert f"config file {recipe} is not UTF-8 text" in err and "save it as UTF-8" in err


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("x: " + "[" * 5000 + "]" * 5000 + "\n", "nests values too deeply"),
        ("epochs: " + "9" * 5000 + "\n", "holds a value YAML cannot convert"),
        ("anchored: &name 3\n", "uses YAML anchors/aliases"),
    ],
    ids=["deep-nesting", "huge-int", "anchor-without-alias"],
)
def test_other_hostile_yaml_is_a_user_error(text: str, problem: str, tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(UserError, match=problem):
        read_yaml(path)


@pytest.mark.parametrize(
    ("values", "shown"),
    [
        ({"dataset": list(range(100_000))}, "'dataset' must be str, got [0, 1, 2,"),
        ({"download": "y" * 100_000}, "'download' must be true or false, got 'yyy"),
        ({"z" * 100_000: 1}, "unknown config key 'zzz"),
    ],
    ids=["long-list", "long-string", "long-key"],
)
def test_values_in_messages_are_shortened(values: dict[str, object], shown: str) -> None:
    with pytest.raises(UserError) as caught:
        build_settings(PretrainConfig, values, {})
    message = str(caught.value)
    assert shown in message and "..." in message and "\n" not in message
    assert len(message) < 160 or "known keys" in message  # the known keys are ours, not the user's
    assert "z" * 81 not in message and "y" * 81 not in message
