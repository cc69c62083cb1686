"""Every command line of README.md runs, at toy size, on images the test generates: the CIFAR-10 quickstart
(pretrain, then evaluate) and the own-photos quickstart (pretrain, then embed). The lines that need the
network or build the environment (``make ...``, ``source ...``) are listed, so a new README line must be
placed in one group or the other. The flags named in the ```bash blocks of docs/ exist on their command."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from simclr.cli import build_parser, main

REPO = Path(__file__).resolve().parents[1]
# run elsewhere: make builds .venv and runs the whole suite (or the demo); source activates the venv
NOT_RUN_HERE = {"make demo", "make test", "source .venv/bin/activate"}
TOY_VALUES = {"--epochs": "1", "--image-size": "16"}  # 16 px: a quarter of the compute of 32 px


def bash_lines(text: str) -> list[str]:
    """The command lines of the ```bash blocks of ``text``, comments removed, continuations joined."""
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            command = line.split("#", 1)[0].strip() if not line.lstrip().startswith("#") else ""
            if command:
                lines.append(command)
    return lines


def toy_folder(root: Path, classes: int = 10, train: int = 4, test: int = 2) -> Path:
    """``root/{train,test}/<class>/*.png``: 32 px images whose colour depends on their class."""
    rng = np.random.default_rng(0)
    for split, count in (("train", train), ("test", test)):
        for label in range(classes):
            folder = root / split / f"class{label}"
            folder.mkdir(parents=True)
            for index in range(count):
                pixels = rng.integers(0, 64, (32, 32, 3)) + np.array([label * 19, 255 - label * 19, 128]) // 2
                Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(folder / f"{index}.png")
    return root


def toy_args(command: str, data: Path, tmp: Path) -> list[str]:
    """``command``'s arguments at toy size: generated data, paths under ``tmp``, one short epoch."""
    args = shlex.split(command)[1:]
    out: list[str] = []
    skip_value = False
    for index, arg in enumerate(args):
        if skip_value:
            skip_value = False
            continue
        if arg == "--download":
            out.append("--no-download")
        elif arg in TOY_VALUES:
            out += [arg, TOY_VALUES[arg]]
            skip_value = True
        elif arg in ("data/cifar10", "~/photos"):
            out.append(str(data))
        elif arg.startswith("runs/") or (index > 0 and args[index - 1] == "--out"):
            out.append(str(tmp / arg))
        else:
            out.append(arg)
    if out[0] == "pretrain":
        out += ["--batch-size", "16", "--knn-max-images", "40", "--workers", "0", "--precision", "32"]
        if "--image-size" not in out:
            out += ["--image-size", TOY_VALUES["--image-size"]]  # the CIFAR-10 line names none: 32 px
    return out


@pytest.mark.slow
def test_every_readme_command_runs_at_toy_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    data = toy_folder(tmp_path / "images")
    commands = bash_lines((REPO / "README.md").read_text())
    assert set(NOT_RUN_HERE) <= set(commands), "a line listed as not run here left the README: update NOT_RUN_HERE"
    ran = []
    for command in commands:
        if command in NOT_RUN_HERE:
            continue
        assert command.startswith("simclr "), f"README line {command!r} is neither run here nor listed"
        args = toy_args(command, data, tmp_path)
        assert main(args) == 0, f"README line failed at toy size: {command!r} (ran as {args})"
        ran.append(args[0])
    assert ran == ["pretrain", "evaluate", "pretrain", "embed"]
    assert (tmp_path / "runs" / "c10" / "eval" / "report.html").is_file()
    assert (tmp_path / "photos.parquet").is_file()


def test_the_readme_recipe_resolves() -> None:
    text = (REPO / "README.md").read_text()
    recipes = re.findall(r"simclr pretrain --config ([\w.-]+)", text)
    assert recipes
    for recipe in recipes:
        assert main(["pretrain", "--config", recipe, "--print-config"]) == 0


def _flags_of(parser, path: list[str]) -> set[str]:  # type: ignore[no-untyped-def]
    import argparse

    for name in path:
        sub = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
        if sub is None or name not in sub.choices:
            break
        parser = sub.choices[name]
    return {flag for action in parser._actions for flag in action.option_strings}


@pytest.mark.parametrize("page", ["README.md", *sorted(p.name for p in (REPO / "docs").glob("*.md"))])
def test_the_flags_the_docs_name_exist(page: str) -> None:
    """Every ``--flag`` of a ``simclr`` line in a ```bash block is a flag of that command (or sub-command)."""
    path = REPO / page if page == "README.md" else REPO / "docs" / page
    parser = build_parser()
    commands = set(_flags_of(parser, []))
    wrong = []
    for line in bash_lines(path.read_text()):
        words = line.split()
        if "simclr" not in words:
            continue
        words = words[words.index("simclr") + 1 :]
        if not words or words[0].startswith("-"):
            continue
        flags = _flags_of(parser, words[:2]) | commands
        for flag in re.findall(r"(?<![\w-])(--[a-z][\w-]*)", " ".join(words)):
            if flag not in flags:
                wrong.append(f"{line!r}: {flag}")
    assert wrong == [], f"{page} names flags its commands do not have: {wrong}"
