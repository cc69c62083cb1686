"""Seed 003's studies: label efficiency (probe top-1 against the fraction of labels) and robustness (the clean
read-out on shifted test images, and on Spirograph renders with shifted nuisance parameters)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from simclr.cli import main
from simclr.errors import UserError
from simclr.evaluation.options import parse_label_fractions
from simclr.evaluation.protocols.shifts import IMAGE_SHIFTS, NUISANCE_SHIFTS, shifted_batches
from simclr.views.spirograph import NUISANCE_NAMES, sample_nuisance

COLOURS = [(150, 100, 100), (100, 150, 100), (100, 100, 150), (150, 150, 100)]


def colour_folder(root: Path, per_class: int = 30) -> Path:
    """Four classes told apart by their mean colour under strong pixel noise: separable with enough labels."""
    rng = np.random.default_rng(0)
    for index, colour in enumerate(COLOURS):
        folder = root / f"class{index}"
        folder.mkdir(parents=True)
        for image in range(per_class):
            pixels = np.clip(np.array(colour) + rng.normal(0, 70, (32, 32, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"{image}.png")
    return root


def test_shifts_are_their_definitions_and_deterministic() -> None:
    images = torch.randint(0, 256, (6, 3, 8, 8), generator=torch.Generator().manual_seed(1), dtype=torch.uint8)
    (bright,) = shifted_batches([images], IMAGE_SHIFTS["brightness"], 0.15, seed=0)
    expected = (images.double() / 255 + 0.15).clamp(0, 1).mul(255).round().to(torch.uint8)
    assert torch.equal(bright, expected)
    (unchanged,) = shifted_batches([images], IMAGE_SHIFTS["colour_jitter"], 0.0, seed=0)
    assert (unchanged.int() - images.int()).abs().max() <= 1  # strength 0: identity up to re-quantisation
    first = torch.cat(list(shifted_batches(images.split(4), IMAGE_SHIFTS["colour_jitter"], 1.0, seed=3)))
    again = torch.cat(list(shifted_batches(images.split(4), IMAGE_SHIFTS["colour_jitter"], 1.0, seed=3)))
    assert torch.equal(first, again) and not torch.equal(first, images)


def test_nuisance_shifts_move_only_their_parameters() -> None:
    drawn = sample_nuisance(50, torch.Generator().manual_seed(0))
    column = {name: index for index, name in enumerate(NUISANCE_NAMES)}
    for shift in NUISANCE_SHIFTS.values():
        assert torch.equal(shift.apply(drawn, 0.0, torch.Generator()), drawn)  # strength 0: the clean draw
    h = NUISANCE_SHIFTS["h"].apply(drawn, 0.2, torch.Generator())
    assert torch.allclose(h[:, column["h"]], drawn[:, column["h"]] + 0.2)
    assert torch.equal(torch.cat([h[:, :0], h[:, 1:]], 1), drawn[:, 1:])  # the colours stay
    foreground = NUISANCE_SHIFTS["foreground"].apply(drawn, 0.3, torch.Generator())
    moved = [column["gfore"], column["bfore"]]
    assert torch.equal(foreground[:, moved], (drawn[:, moved] + 0.3).clamp(max=1.0))
    assert foreground[:, moved].max() == 1.0  # clamped: a colour cannot exceed 1
    kept = [index for index in range(6) if index not in moved]
    assert torch.equal(foreground[:, kept], drawn[:, kept])
    background = NUISANCE_SHIFTS["background"].apply(drawn, -0.3, torch.Generator())
    back = [column["rback"], column["gback"], column["bback"]]
    assert torch.equal(background[:, back], (drawn[:, back] - 0.3).clamp(min=0.0))
    spread = NUISANCE_SHIFTS["spread"].apply(drawn, 0.5, torch.Generator())
    h_centre = 1.5  # the middle of h's training range [0.5, 2.5]
    assert torch.allclose(spread[:, column["h"]] - h_centre, 1.5 * (drawn[:, column["h"]] - h_centre))
    assert spread[:, back].min() >= 0.0 and spread[:, moved].max() <= 1.0


def test_label_fractions_are_parsed_and_checked() -> None:
    assert parse_label_fractions("1,0.1, 0.01") == (0.01, 0.1, 1.0)
    for bad in ("0", "1.5", "a", ",", "nan"):
        with pytest.raises(UserError, match="--label-fractions"):
            parse_label_fractions(bad)


def test_label_efficiency_and_robustness_on_a_separable_set(make_run, tmp_path: Path, capsys) -> None:
    run = make_run("imagefolder", colour_folder(tmp_path / "colours"))
    code = main(["evaluate", str(run), "--label-fractions", "0.1,0.3,1", "--robustness", "--method", "tsne"])
    assert code == 0
    out = capsys.readouterr().out
    assert "label_efficiency top-1 by label fraction 0.1:" in out and "robustness: clean top1" in out
    results = json.loads((run / "eval" / "metrics.json").read_text())["results"]

    rows = results["label_efficiency"]["metrics"]["by_fraction"]
    assert [row["label_fraction"] for row in rows] == [0.1, 0.3, 1.0]
    assert rows[0]["labels"] < rows[1]["labels"] < rows[2]["labels"] == results["linear"]["protocol"]["n_train"]
    top1 = [row["top1"] for row in rows]
    assert top1 == sorted(top1) and top1[-1] >= 0.9 and top1[0] < 1.0  # more labels help until the set is solved
    assert rows[-1]["top1"] == pytest.approx(results["linear"]["metrics"]["top1"])  # all labels: the standard probe

    robustness = results["robustness"]["metrics"]
    assert robustness["clean_top1"] == pytest.approx(results["linear"]["metrics"]["top1"])
    shifted = robustness["shifted"]
    assert {(row["shift"], row["strength"]) for row in shifted} == {
        (name, strength) for name, shift in IMAGE_SHIFTS.items() for strength in shift.strengths
    }
    assert all(row["change"] == pytest.approx(row["score"] - robustness["clean_top1"]) for row in shifted)
    hue = [row for row in shifted if row["shift"] == "colour_jitter" and row["strength"] == 1.5]
    assert hue[0]["score"] < robustness["clean_top1"]  # classes told apart by colour suffer from hue shifts

    plots = {path.name for path in (run / "eval" / "plots").iterdir()}
    assert {"label_efficiency.png", "robustness.png"} <= plots
    html = (run / "eval" / "report.html").read_text()
    assert "Label efficiency: linear probe top-1" in html and "Robustness: the clean linear read-out" in html


def test_robustness_of_a_spirograph_run_is_its_factor_error(make_run, capsys) -> None:
    run = make_run("spirograph", train_size=120, test_size=40)
    assert main(["evaluate", str(run), "--robustness", "--no-plots"]) == 0
    metrics = json.loads((run / "eval" / "metrics.json").read_text())["results"]["robustness"]["metrics"]
    assert metrics["metric"] == "mse" and metrics["clean_mse"] > 0
    shifted = metrics["shifted"]
    assert [(row["shift"], row["strength"]) for row in shifted] == [
        (name, strength) for name, shift in NUISANCE_SHIFTS.items() for strength in shift.strengths
    ]
    # every shift re-renders the pictures, so the same read-out scores them differently from the clean set
    assert all(row["score"] != metrics["clean_mse"] for row in shifted)
    lightest_background = next(row for row in shifted if (row["shift"], row["strength"]) == ("background", 0.3))
    assert lightest_background["score"] > metrics["clean_mse"]  # a background near the foreground hides the curve
    assert "robustness: clean mse" in capsys.readouterr().out


def test_a_projection_map_without_the_head_weights_is_a_one_line_error(make_run, tmp_path: Path, capsys) -> None:
    run = make_run("imagefolder", colour_folder(tmp_path / "colours", per_class=8))
    assert main(["evaluate", str(run), "--map-layer", "projection"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("simclr: error: the projection layer needs the head's weights") and "\n" not in err
    assert not (run / "eval" / "metrics.json").exists()  # refused before any evaluation ran


def test_classifiers_fit_on_a_folders_valid_split_when_asked(make_run, tmp_path: Path, capsys) -> None:
    root = tmp_path / "splits"
    for split, count in (("train", 6), ("valid", 10), ("test", 5)):
        colour_folder(root / split, per_class=count)
    run = make_run("imagefolder", root)
    assert main(["linear-eval", str(run), "--train-split", "valid", "--no-cache"]) == 0
    doc = json.loads((run / "eval" / "metrics.json").read_text())
    assert (
        doc["results"]["linear"]["protocol"]["n_train"] == 4 * 10
        and doc["results"]["linear"]["protocol"]["n_test"] == 4 * 5
    )
    assert "valid/" in doc["dataset"]["train_split"]
    flat = make_run("imagefolder", colour_folder(tmp_path / "flat", per_class=4), name="flat")
    capsys.readouterr()
    assert main(["linear-eval", str(flat), "--train-split", "valid"]) == 2
    assert "needs an image folder with valid/ and test/" in capsys.readouterr().err
