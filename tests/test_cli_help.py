"""Every sub-command's help: flags generated from the settings dataclasses (none added by hand), one meaning
per flag across commands, defaults shown, examples at the end."""

from __future__ import annotations

import argparse
import dataclasses
import re
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest

from simclr.autoencoder_config import AutoencoderConfig
from simclr.cli import COMMANDS, build_parser, main
from simclr.config import PretrainConfig
from simclr.evaluation.options import EvalSessionOptions, FinetuneOptions, LinearEvalOptions, SupervisedOptions
from simclr.settings import setting_of

SUBCOMMANDS = [name.replace("_", "-") for name in COMMANDS]
COMMANDS_DIR = Path(__file__).resolve().parents[1] / "src" / "simclr" / "commands"


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
    assert "--temperature TEMPERATURE temperature of NT-Xent or SupCon (default: 0.5)" in text
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


# -- every flag comes from a setting, and means one thing ------------------------------------------------
def command_parsers(
    parser: argparse.ArgumentParser | None = None, prefix: str = "simclr"
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """Every sub-command's parser (``data``'s sub-commands too), with its command line."""
    for action in (parser or build_parser())._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield f"{prefix} {name}", sub
                yield from command_parsers(sub, f"{prefix} {name}")


def hand_made(parser: argparse.ArgumentParser) -> list[str]:
    """The arguments of ``parser`` that no settings field made (help, --version and sub-commands aside)."""
    made_by_argparse = (argparse._HelpAction, argparse._VersionAction, argparse._SubParsersAction)
    return [
        (action.option_strings or [action.dest])[0]
        for action in parser._actions
        if not isinstance(action, made_by_argparse) and setting_of(action) is None
    ]


def test_every_argument_of_every_command_comes_from_a_setting() -> None:
    parsers = dict(command_parsers())
    assert {"simclr pretrain", "simclr data", "simclr data pack", "simclr data split"} <= set(parsers)
    assert {name: hand_made(parser) for name, parser in parsers.items() if hand_made(parser)} == {}
    assert hand_made(build_parser()) == []
    parsers["simclr embed"].add_argument("--by-hand")  # what the check is there to catch
    assert hand_made(parsers["simclr embed"]) == ["--by-hand"]


def test_no_command_module_adds_an_argument_by_hand() -> None:
    calls = [
        f"{path.name}:{number}"
        for path in sorted(COMMANDS_DIR.glob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if "add_argument(" in line
    ]
    assert calls == []


# Flags spelled alike in several commands that set different things; each says in its help what it sets.
TRAINS_SOMETHING_ELSE = (
    "pretraining, the autoencoder and the classifiers of the evaluation commands each train something else, "
    "with an optimiser and augmentation of their own"
)
DIFFERENT_MEANINGS = {
    "--out": "each command writes something else: a run directory, an embeddings file, a report, a sweep's folder",
    "--format": "embed writes embeddings, export a backbone: different file formats",
    "--seed": "each command draws something else: views, splits, a one-shot choice, a shard order",
    "--dataset": "pretraining's dataset, or with import-weights the dataset of the config written beside a backbone",
    "--backbone": "pretraining builds any backbone; import-weights names the architecture of a checkpoint",
    "--stem": "pretraining chooses a stem (auto by image size); import-weights names the stem a checkpoint has",
    "--image-size": "the stored images (pretrain), the autoencoder's input, the supervised baseline's resize, or "
    "what an imported checkpoint was trained at",
    "--devices": "pretraining's Lightning devices per machine; sweep's GPUs, one cell on each",
    "--method": "evaluate's embedding map (t-SNE, UMAP); linear-eval's fit (L-BFGS, SGD)",
    "--temperature": "the contrastive loss's temperature in pretraining; the kNN vote's in knn",
    "--loss": "pretraining's contrastive loss (NT-Xent, SupCon); the classifier's in linear-eval, finetune and "
    "supervised (cross-entropy, focal)",
    "--standardize": "pretraining standardises the images, linear-eval and regress the features",
    "--batch-size": "a training step's images (pretraining on each process, the autoencoder) or a forward pass's "
    "(evaluation, embed, predict)",
    "--backbone-lr-scale": "the same setting; supervised's default depends on its --weights, and its help says so",
    **dict.fromkeys(
        (
            "--crop-min-scale",
            "--epochs",
            "--head",
            "--lr",
            "--momentum",
            "--nesterov",
            "--optimizer",
            "--subset",
            "--val-fraction",
            "--weight-decay",
            "--weights",
        ),
        TRAINS_SOMETHING_ELSE,
    ),
}


def meanings_of_flags() -> dict[str, dict[tuple[str, str], list[str]]]:
    """For every flag: the commands offering it, by the setting's help text and the parser of its value
    (positional arguments are named by each command's help, not typed)."""
    meanings: dict[str, dict[tuple[str, str], list[str]]] = defaultdict(lambda: defaultdict(list))
    for command, parser in command_parsers():
        for action in parser._actions:
            item = setting_of(action)
            if item is None or not action.option_strings or action.help == argparse.SUPPRESS:  # SUPPRESS: an old
                continue  # spelling, hidden; its new one is listed
            parse = getattr(action.type, "__name__", str(action.type))
            meanings[action.option_strings[0]][(item.metadata["help"], parse)].append(command)
    return meanings


def test_a_flag_says_the_same_in_every_command_that_offers_it() -> None:
    """A shared setting is defined once (its help and type come from one field); a flag spelled alike in two
    commands that sets different things is listed in DIFFERENT_MEANINGS with the reason."""
    meanings = meanings_of_flags()
    assert {"--data-dir", "--workers", "--accelerator", "--overwrite", "--memory-budget"} <= set(meanings)
    differing = {flag: dict(variants) for flag, variants in meanings.items() if len(variants) > 1}
    assert {flag: variants for flag, variants in differing.items() if flag not in DIFFERENT_MEANINGS} == {}
    assert sorted(set(DIFFERENT_MEANINGS) - set(differing)) == [], "an exception no longer needed: remove it"
    shared = {flag: len(next(iter(variants.values()))) for flag, variants in meanings.items() if len(variants) == 1}
    assert shared["--data-dir"] >= 12 and shared["--accelerator"] >= 10 and shared["--overwrite"] == 6


@pytest.mark.parametrize(
    "command",
    [
        ["knn", "RUN"],
        ["evaluate", "RUN"],
        ["embed", "RUN", "--data-dir", "photos", "--out", "e.npz"],
        ["export", "RUN", "--format", "onnx", "--out", "b.onnx"],
    ],
)
def test_the_run_config_flag_keeps_its_old_spelling_for_a_release(
    capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    """``--config`` is a recipe in pretrain and train-ae; the commands that read a run call its config.yaml
    ``--run-config`` and still take ``--config``, hidden, with a one-line note on stderr."""
    args = build_parser().parse_args([*command, "--run-config", "a/config.yaml"])
    assert args.run_config == Path("a/config.yaml") and capsys.readouterr().err == ""
    args = build_parser().parse_args([*command, "--config", "b/config.yaml"])
    assert args.run_config == Path("b/config.yaml")
    note = capsys.readouterr().err.splitlines()
    assert len(note) == 1 and "--config is deprecated" in note[0] and "use --run-config" in note[0]
    text = help_text(capsys, command[0])
    assert "--run-config" in text and "--config" not in text
