"""Hostile numbers (issue 26): NaN, infinity, negative seeds, images too small to mean anything or too large to
hold, integers hundreds of digits long. Every one is refused by the one check of numbers all commands share
(:func:`simclr.settings.check_values`, ranges from :mod:`simclr.ranges`), in one line naming the setting and
its flag, before anything is written; ``--workers`` beyond the machine's CPUs is capped with one line."""

from __future__ import annotations

import dataclasses
import importlib
import logging
import math
import pkgutil
import time
import typing
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

import simclr.commands
from simclr.autoencoder_config import AutoencoderConfig
from simclr.cli import main
from simclr.config import PretrainConfig, build_config
from simclr.data.pack_settings import PackConfig
from simclr.data.packed import pack_dataset
from simclr.data.reading import MIN_IMAGE_SIDE
from simclr.errors import UserError
from simclr.hardware import usable_cpus, worker_processes
from simclr.models.backbones import build_backbone
from simclr.ranges import MAX_WHOLE_NUMBER, SEED
from simclr.settings import check_values, field_types

HUGE = int("9" * 400)  # a 400-digit integer


def one_line_refusal(argv: list[str], capsys: pytest.CaptureFixture[str], tmp_path: Path) -> str:
    """Run the CLI in ``tmp_path``; it must exit 2 with one line, fast, writing nothing; returns the line."""
    before = sorted(tmp_path.rglob("*"))
    start = time.perf_counter()
    assert main(argv) == 2
    assert time.perf_counter() - start < 5.0
    err = capsys.readouterr().err.strip()
    assert err.startswith("simclr: error: ") and "\n" not in err and "Traceback" not in err, err
    assert sorted(tmp_path.rglob("*")) == before
    return err


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--lr", "nan"], "lr must be a finite number, got nan; fix --lr"),
        (["--lr=-inf"], "lr must be a finite number, got -inf; fix --lr"),
        (["--momentum", "nan"], "momentum must be a finite number, got nan; fix --momentum"),
        (["--momentum", "1"], "momentum must be within [0, 1), got 1.0; fix --momentum"),
        (["--temperature", "inf"], "temperature must be a finite number, got inf; fix --temperature"),
        (["--warmup-epochs", "nan"], "warmup_epochs must be a finite number, got nan; fix --warmup-epochs"),
        (["--seed=-1"], "seed must be within 0..4294967295 (numpy's seeds), got -1; fix --seed"),
        (["--seed", str(2**32)], "seed must be within 0..4294967295"),
        (["--image-size", "1"], "image_size must be >= 8"),
        (["--image-size", "3"], "image_size must be >= 8"),
        (["--image-size", "7"], "fix --image-size"),
        (["--epochs", str(HUGE)], "epochs must be a whole number below 2**63, got 9999"),
        (["--crop-min-scale", "0"], "crop_min_scale must be within (0, 1], got 0.0; fix --crop-min-scale"),
        (["--flip-p", "nan"], "flip_p must be a finite number"),
    ],
)
def test_hostile_pretraining_flags_are_one_line(
    flags: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    err = one_line_refusal(
        ["pretrain", "--dataset", "spirograph", *flags, "--out", str(tmp_path / "run")], capsys, tmp_path
    )
    assert message in err


def test_an_infinite_learning_rate_in_a_config_file_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("dataset: spirograph\nlr: .inf\n")
    err = one_line_refusal(["pretrain", "--config", str(recipe), "--print-config"], capsys, tmp_path)
    assert "lr must be a finite number, got inf; fix --lr" in err
    recipe.write_text("dataset: spirograph\ntemperature: .nan\n")
    assert "temperature must be a finite number, got nan" in one_line_refusal(
        ["pretrain", "--config", str(recipe), "--print-config"], capsys, tmp_path
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["knn", "RUN", "--temperature", "nan"], "temperature must be a finite number, got nan; fix --temperature"),
        (["knn", "RUN", "--k", "5", str(HUGE)], "k must be a whole number below 2**63"),
        (["finetune", "RUN", "--lr", "inf"], "lr must be a finite number, got inf; fix --lr"),
        (["finetune", "RUN", "--dropout", "1"], "dropout must be within [0, 1), got 1.0; fix --dropout"),
        (["linear-eval", "RUN", "--val-fraction", "nan"], "val_fraction must be a finite number"),
        (["linear-eval", "RUN", "--l2-grid", "1e-4:inf:3"], "l2_grid must be a finite number"),
        (["evaluate", "RUN", "--seed", "-1"], "seed must be within 0..4294967295"),
        (["supervised", "RUN", "--image-size", "4"], "image_size must be >= 8"),
        (["train-ae", "--dataset", "spirograph", "--lr", "nan"], "lr must be a finite number, got nan; fix --lr"),
        (["data", "split", "cifar10", "OUT", "--labelled-per-class", "0"], "labelled_per_class must be >= 1"),
        (["data", "pack", "RUN", "OUT", "--quality", "101"], "quality must be within 1..100, got 101; fix --quality"),
        (["predict", "RUN", "--data-dir", "RUN", "--out", "OUT", "--top-k", "0"], "top_k must be >= 1, got 0"),
    ],
)
def test_every_command_shares_the_check(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The check runs as the settings are built, before the run directory (here missing) is even looked at."""
    paths = {"RUN": str(tmp_path / "missing-run"), "OUT": str(tmp_path / "out")}
    err = one_line_refusal([paths.get(arg, arg) for arg in argv], capsys, tmp_path)
    assert message in err


def test_an_image_size_no_memory_holds_is_refused_before_allocating(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    err = one_line_refusal(
        ["pretrain", "--dataset", "spirograph", "--image-size", "100000", "--out", str(tmp_path / "run")],
        capsys,
        tmp_path,
    )
    assert "--image-size 100000 needs 55.9 TB for one batch of views (512 x 3 x 100000 x 100000 float32" in err
    assert "use a smaller --image-size (or --batch-size)" in err
    with pytest.raises(UserError, match="--image-size 100000 needs 27.9 TB for one batch of images"):
        AutoencoderConfig(dataset="spirograph", image_size=100_000).validate()


def test_the_smallest_image_side_is_what_the_cifar_stem_reduces_to_one_pixel() -> None:
    """Below 8 px the last stage of the CIFAR stem's ResNet (three halvings) sees padding, not the image."""
    import torch

    backbone, _ = build_backbone("resnet18", "cifar")
    trunk = torch.nn.Sequential(*list(backbone.children())[:-2]).eval()  # up to layer4, without the pooling
    with torch.no_grad():
        assert trunk(torch.zeros(1, 3, MIN_IMAGE_SIDE, MIN_IMAGE_SIDE)).shape[-2:] == (1, 1)
        assert trunk(torch.zeros(1, 3, 2 * MIN_IMAGE_SIDE, 2 * MIN_IMAGE_SIDE)).shape[-2:] == (2, 2)
    build_config({}, {"image_size": MIN_IMAGE_SIDE})  # the smallest side is accepted
    with pytest.raises(UserError, match="image_size must be >= 8"):
        build_config({}, {"image_size": MIN_IMAGE_SIDE - 1})


def test_the_seed_range_is_exactly_what_numpy_accepts() -> None:
    assert SEED.low is not None and SEED.high is not None
    np.random.seed(int(SEED.low))
    np.random.seed(int(SEED.high))
    for outside in (int(SEED.low) - 1, int(SEED.high) + 1):
        with pytest.raises(ValueError):
            np.random.seed(outside)


def test_a_config_built_in_python_is_checked_too() -> None:
    with pytest.raises(UserError, match="lr must be a finite number, got nan"):
        PretrainConfig(lr=math.nan).validate()
    with pytest.raises(UserError, match="epochs must be a whole number, got 2.5"):
        PretrainConfig(epochs=2.5).validate()  # type: ignore[arg-type]
    with pytest.raises(UserError, match="seed must be within"):
        PackConfig(seed=-1).validate()


def _settings_classes() -> list[type]:
    """Every settings dataclass the commands offer flags from, and the configs they build."""
    modules = ["simclr.config", "simclr.evaluation.options", "simclr.data.reading", "simclr.data.pack_settings"]
    modules += ["simclr.device_settings"]
    modules += [f"simclr.commands.{info.name}" for info in pkgutil.iter_modules(simclr.commands.__path__)]
    found: list[type] = []
    for name in modules:
        module = importlib.import_module(name)
        for value in vars(module).values():
            if isinstance(value, type) and dataclasses.is_dataclass(value) and value.__module__ == name:
                found.append(value)
    return found


def _number_fields() -> list[tuple[type, str, type]]:
    result = []
    for cls in _settings_classes():
        for name, kind in field_types(cls).items():
            item = typing.get_args(kind)[0] if typing.get_origin(kind) in (list, tuple) else kind
            if item in (int, float):
                result.append((cls, name, item))
    return result


def _defaults(cls: type) -> Any:
    """An instance of ``cls`` holding its defaults (required fields None), built without the command's checks."""
    instance = object.__new__(cls)
    for item in dataclasses.fields(cls):
        default = item.default if item.default is not dataclasses.MISSING else None
        object.__setattr__(instance, item.name, default)
    return instance


def _with_value(cls: type, name: str, value: Any) -> Any:
    """:func:`_defaults` with ``value`` in field ``name`` (the only item of a list field)."""
    instance = _defaults(cls)
    kind = field_types(cls)[name]
    object.__setattr__(instance, name, [value] if typing.get_origin(kind) in (list, tuple) else value)
    return instance


def test_every_number_of_every_setting_is_checked() -> None:
    checked = _number_fields()
    assert len(checked) > 80  # the configs of every command
    for cls in {cls for cls, _, _ in checked}:
        check_values(_defaults(cls))  # every default is in its range
    for cls, name, kind in checked:
        hostile = [HUGE, -HUGE, MAX_WHOLE_NUMBER + 1] if kind is int else [math.nan, math.inf, -math.inf]
        for value in hostile:
            with pytest.raises(UserError) as info:
                check_values(_with_value(cls, name, value))
            assert f"{name} must be" in str(info.value) and "\n" not in str(info.value), (cls, name)


def test_every_seed_takes_numpys_range() -> None:
    seeds = [(cls, item) for cls in _settings_classes() for item in dataclasses.fields(cls) if item.name == "seed"]
    assert len(seeds) >= 6
    assert all(item.metadata.get("within") == SEED for _, item in seeds), [cls for cls, _ in seeds]


def test_workers_beyond_the_cpus_are_capped_with_one_line(caplog: pytest.LogCaptureFixture) -> None:
    cpus = usable_cpus()
    with caplog.at_level(logging.WARNING, logger="simclr"):
        assert worker_processes(cpus) == cpus
        assert worker_processes(cpus + 10_000) == cpus
        assert worker_processes(cpus + 10_000) == cpus  # said once
    lines = [record.getMessage() for record in caplog.records]
    assert lines == [f"--workers {cpus + 10_000} is more than the {cpus} CPUs this process may use; starting {cpus}"]


def test_ten_thousand_workers_on_streamed_data_start_what_the_machine_has(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for label in ("a", "b"):
            folder = tmp_path / "images" / split / label
            folder.mkdir(parents=True)
            for index in range(8):
                pixels = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{index}.png")
    pack_dataset(str(tmp_path / "images"), tmp_path / "packed", PackConfig(workers=0))
    run = tmp_path / "run"
    argv = ["pretrain", "--dataset", "packed", "--data-dir", str(tmp_path / "packed"), "--out", str(run)]
    argv += ["--workers", "10000", "--batch-size", "8", "--epochs", "1", "--max-steps", "1", "--knn-every-epochs", "0"]
    argv += ["--precision", "32", "--accelerator", "cpu", "--quiet"]
    assert main(argv) == 0
    cpus = usable_cpus()
    assert (
        f"--workers 10000 is more than the {cpus} CPUs this process may use; starting {cpus}"
        in (run / "train.log").read_text()
    )
