"""Every sub-command's help: flags generated from the config dataclasses, defaults shown, examples at the end."""

from __future__ import annotations

import argparse
import dataclasses
import re

import pytest

from simclr.cli import COMMANDS, build_parser, main
from simclr.config import AutoencoderConfig, PretrainConfig
from simclr.evaluation.options import EvalSessionOptions, FinetuneOptions, LinearEvalOptions, SupervisedOptions

SUBCOMMANDS = [name.replace("_", "-") for name in COMMANDS]


def help_text(capsys: pytest.CaptureFixture[str], *command: str) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_every_help_ends_with_examples(capsys: pytest.CaptureFixture[str], command: str) -> None:
    text = help_text(capsys, command)
    examples = text.split("examples:\n", 1)
    assert len(examples) == 2, f"{command} --help has no examples"
    lines = [line.strip() for line in examples[1].splitlines() if line.strip()]
    assert 1 <= len(lines) <= 3 and all(line.startswith("simclr ") for line in lines)


def test_pretrain_help_groups_flags_as_the_readme_table(capsys: pytest.CaptureFixture[str]) -> None:
    text = help_text(capsys, "pretrain")
    headings = re.findall(r"^(\w+):$", text, flags=re.MULTILINE)
    assert headings[-8:] == ["data", "views", "model", "loss", "optimiser", "hardware", "run", "examples"]
    data = text.split("\ndata:\n")[1].split("\nviews:\n")[0]
    assert "--data-dir" in data and "--batch-size" not in data
    assert "--batch-size" in text.split("\noptimiser:\n")[1].split("\nhardware:\n")[0]


def test_pretrain_help_shows_every_default(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    pretrain = next(action for action in parser._actions if isinstance(action, argparse._SubParsersAction)).choices[
        "pretrain"
    ]
    helps = {action.dest: action.help or "" for action in pretrain._actions}
    for item in dataclasses.fields(PretrainConfig):
        if not item.metadata.get("cli", True):  # filled by the run (subset_sha256, what --standardize measured)
            assert item.name not in helps
            continue
        assert "default" in helps[item.name], f"--{item.name}: no default in {helps[item.name]!r}"
    text = " ".join(help_text(capsys, "pretrain").split())  # argparse wraps lines
    assert "--temperature TEMPERATURE NT-Xent temperature (default: 0.5)" in text
    assert "--channels-last, --no-channels-last channels_last memory format (default: on)" in text


@pytest.mark.parametrize(
    ("command", "settings"),
    [
        ("train-ae", AutoencoderConfig),
        ("finetune", FinetuneOptions),
        ("supervised", SupervisedOptions),
        ("linear-eval", LinearEvalOptions),
    ],
)
def test_flags_come_from_the_settings_dataclass(
    capsys: pytest.CaptureFixture[str], command: str, settings: type
) -> None:
    text = help_text(capsys, command)
    for item in dataclasses.fields(settings):
        if not item.metadata.get("cli", True):  # filled by the command (e.g. the session's --seed)
            continue
        flag = "--" + (item.metadata.get("flag") or item.name).replace("_", "-")
        assert flag in text, f"{command}: {flag} missing"
    if settings is not AutoencoderConfig:
        for item in dataclasses.fields(EvalSessionOptions):
            assert "--" + (item.metadata.get("flag") or item.name).replace("_", "-") in text


def test_generated_flags_parse_into_the_dataclass(tmp_path: object, capsys: pytest.CaptureFixture[str]) -> None:
    """A bad value of a generated flag is caught by the dataclass' validation: one line, exit 2."""
    assert main(["linear-eval", "nowhere", "--tta", "1"]) == 2
    assert "--tta 1" in capsys.readouterr().err
    assert main(["finetune", "nowhere", "--label-fraction", "0.1", "--labels-per-class", "3"]) == 2
    assert "not allowed with argument" in capsys.readouterr().err
