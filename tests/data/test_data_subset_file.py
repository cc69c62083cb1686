"""Subset files of 'simclr data split': disjoint labelled / unlabelled parts, read back by pretrain and finetune."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from simclr.cli import main
from simclr.config import build_config
from simclr.data.subset_file import SubsetFile, file_sha256, make_subset_file, parse_subset_choice
from simclr.errors import UserError
from simclr.evaluation.classifiers.training_labels import choose_labelled
from simclr.training.training_data import load_training_data, pin_subset_file

LABELS = torch.tensor([0] * 10 + [1] * 7 + [2] * 3)


def test_parts_never_overlap_and_cover_every_image() -> None:
    subset = make_subset_file("cifar10", LABELS, 4, seed=0)
    labelled, unlabelled = set(subset.labelled.tolist()), set(subset.unlabelled.tolist())
    assert not labelled & unlabelled and labelled | unlabelled == set(range(20))
    # 4 per class, all of the 3-image class
    assert torch.bincount(LABELS[subset.labelled]).tolist() == [4, 4, 3]
    assert torch.bincount(LABELS[subset.unlabelled], minlength=3).tolist() == [6, 3, 0]


def test_seeded_reproducibility() -> None:
    first = make_subset_file("cifar10", LABELS, 4, seed=0)
    assert torch.equal(first.labelled, make_subset_file("cifar10", LABELS, 4, seed=0).labelled)
    assert not torch.equal(first.labelled, make_subset_file("cifar10", LABELS, 4, seed=1).labelled)


def test_write_read_round_trip(tmp_path: Path) -> None:
    subset = make_subset_file("cifar10", LABELS, 2, seed=3)
    sha = subset.write(tmp_path / "s" / "split.json")
    back = SubsetFile.read(tmp_path / "s" / "split.json")
    assert sha == file_sha256(tmp_path / "s" / "split.json")
    assert (back.dataset, back.images, back.seed, back.labelled_per_class) == ("cifar10", 20, 3, 2)
    assert torch.equal(back.labelled, subset.labelled) and torch.equal(back.unlabelled, subset.unlabelled)


def _write(path: Path, **changes: object) -> Path:
    body = {
        "format": "simclr-subset/1",
        "dataset": "cifar10",
        "images": 4,
        "seed": 0,
        "labelled_per_class": 1,
        "labelled": [0, 1],
        "unlabelled": [2, 3],
    }
    body.update(changes)
    path.write_text(json.dumps(body))
    return path


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"format": "other"}, "not a simclr subset file"),
        ({"unlabelled": [1, 2, 3]}, "both labelled and unlabelled"),
        ({"labelled": [0, 9]}, "damaged .*outside 0..3"),
        ({"labelled": [0, 0]}, "listed twice"),
        ({"labelled": "0,1"}, "damaged"),
        ({"images": -1}, "damaged"),
    ],
)
def test_bad_files_are_one_line_errors(tmp_path: Path, changes: dict[str, object], message: str) -> None:
    with pytest.raises(UserError, match=message) as info:
        SubsetFile.read(_write(tmp_path / "bad.json", **changes))
    assert "\n" not in str(info.value)


def test_unreadable_missing_and_mismatched_files(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="does not exist; write one with 'simclr data split'"):
        SubsetFile.read(tmp_path / "absent.json")
    (tmp_path / "junk.json").write_text("{not json")
    with pytest.raises(UserError, match="not readable JSON"):
        SubsetFile.read(tmp_path / "junk.json")
    good = _write(tmp_path / "good.json")
    with pytest.raises(UserError, match="made for cifar10, not stl10"):
        parse_subset_choice(f"{good}:labelled").load("stl10", 4)
    with pytest.raises(UserError, match="indexes 4 images but .* has 5"):
        parse_subset_choice(f"{good}:labelled").load("cifar10", 5)
    with pytest.raises(UserError, match="FILE:unlabelled"):
        parse_subset_choice(str(good))
    assert parse_subset_choice(str(good), default_part="labelled").part == "labelled"


def test_finetune_takes_the_labelled_part(tmp_path: Path) -> None:
    path = tmp_path / "split.json"
    make_subset_file("cifar10", LABELS, 2, seed=0).write(path)
    chosen, protocol = choose_labelled(LABELS, dataset="cifar10", subset=str(path), seed=5)
    assert torch.equal(chosen, SubsetFile.read(path).labelled)
    assert protocol["subset_file"] == str(path) and protocol["subset_sha256"] == file_sha256(path)
    with pytest.raises(UserError, match="labelled part"):
        choose_labelled(LABELS, dataset="cifar10", subset=f"{path}:unlabelled", seed=0)


def _folder(root: Path, per_class: tuple[int, ...] = (6, 5, 4)) -> Path:
    rng = np.random.default_rng(0)
    for k, n in enumerate(per_class):
        (root / f"class{k}").mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)).save(root / f"class{k}" / f"{i}.png")
    return root


def test_split_command_then_pretrain_data_honours_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _folder(tmp_path / "data")
    out = tmp_path / "split.json"
    argv = ["data", "split", "imagefolder", str(out), "--data-dir", str(data), "--labelled-per-class", "2"]
    assert main(argv) == 0
    assert "6 labelled" in capsys.readouterr().out
    subset = SubsetFile.read(out)
    assert subset.labelled.numel() == 6 and subset.unlabelled.numel() == 9
    assert main(argv) == 2 and "--overwrite" in capsys.readouterr().err  # never replaced silently

    config = build_config(
        {}, dict(dataset="imagefolder", data_dir=str(data), subset=f"{out}:unlabelled", out=str(tmp_path / "run"))
    )
    pinned = pin_subset_file(config)
    assert pinned.subset_sha256 == file_sha256(out)
    train = load_training_data(pinned).train
    assert len(train) == 9 and torch.bincount(train.labels).tolist() == [4, 3, 2]
    labelled = load_training_data(
        build_config({}, dict(dataset="imagefolder", data_dir=str(data), subset=f"{out}:labelled"))
    ).train
    assert len(labelled) == 6
    assert not set(train.file_names) & set(labelled.file_names)
    # A resumed run whose subset file changed since is refused.
    make_subset_file("imagefolder", torch.tensor([0] * 6 + [1] * 5 + [2] * 4), 1, 0).write(out)
    with pytest.raises(UserError, match="changed since this run started"):
        pin_subset_file(pinned)


@pytest.mark.slow
def test_pretrain_run_records_the_subset(tmp_path: Path) -> None:
    from simclr.training.pretrain import run_pretraining

    data = _folder(tmp_path / "data", (8, 8))
    out = tmp_path / "split.json"
    assert main(["data", "split", "imagefolder", str(out), "--data-dir", str(data), "--labelled-per-class", "2"]) == 0
    run = tmp_path / "run"
    config = build_config(
        {},
        dict(
            dataset="imagefolder", data_dir=str(data), subset=f"{out}:unlabelled", out=str(run), batch_size=4,
            epochs=1, workers=0, precision="32", knn_every_epochs=0,
        ),
    )  # fmt: skip
    result = run_pretraining(config, quiet=True)
    assert result.global_step == 3  # 12 unlabelled images / 4
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["subset"] == f"{out}:unlabelled" and saved["subset_sha256"] == file_sha256(out)


def test_bad_subset_flag_is_caught_by_validation() -> None:
    with pytest.raises(UserError, match="FILE:unlabelled"):
        build_config({}, dict(dataset="cifar10", subset="split.json:half")).validate()


def test_resuming_with_another_subset_file_pins_it_afresh(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from simclr.settings import config_to_yaml

    run = tmp_path / "run"
    run.mkdir()
    saved = build_config({}, dict(dataset="cifar10", subset="old.json:unlabelled", subset_sha256="0" * 64))
    (run / "config.yaml").write_text(config_to_yaml(saved))
    argv = ["pretrain", "--resume", str(run), "--print-config"]
    assert main(argv) == 0
    assert yaml.safe_load(capsys.readouterr().out)["subset_sha256"] == "0" * 64  # kept: checked against the file
    assert main([*argv, "--resume-with-changes", "--subset", "new.json:unlabelled"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["subset_sha256"] is None  # the new file's is recorded at start


def test_a_python_resume_keeps_the_run_s_hash_unless_its_subset_file_changes() -> None:
    """``pretrain(config)`` with ``config.resume`` settles the resume as the command line does: the run's
    measurements are kept (the hash is then checked against the file), and another subset file, an allowed
    and recorded change, is pinned afresh (its hash is no change of its own)."""
    from dataclasses import replace

    import pytest

    from simclr.errors import UserError
    from simclr.training.resume import settle_resume

    started = build_config({}, dict(dataset="cifar10", subset="old.json:unlabelled", resume="runs/r"))
    saved = replace(started, subset_sha256="0" * 64, normalization_mean=[0.5] * 3, normalization_std=[0.2] * 3)
    same, changes = settle_resume(started, saved, allowed=False, switch="resume_with_changes=True")
    assert (same.subset_sha256, same.normalization_mean, same.normalization_std) == ("0" * 64, [0.5] * 3, [0.2] * 3)
    assert changes == {}
    another = replace(started, subset="new.json:unlabelled")
    with pytest.raises(UserError, match="resume_with_changes=True"):
        settle_resume(another, saved, allowed=False, switch="resume_with_changes=True")
    other, changes = settle_resume(another, saved, allowed=True, switch="resume_with_changes=True")
    assert other.subset_sha256 is None and other.normalization_mean == [0.5] * 3
    assert changes == {"subset": ("old.json:unlabelled", "new.json:unlabelled")}
