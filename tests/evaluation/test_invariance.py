"""evaluate --invariance: the conditional-variance metric and the augmentation regression."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from simclr.cli import main
from simclr.evaluation.invariance import conditional_variance


def test_conditional_variance_is_zero_for_invariant_features_and_grows_with_view_noise() -> None:
    gen = torch.Generator().manual_seed(0)
    base = torch.randn(1, 50, 16, generator=gen)
    assert conditional_variance(base.repeat(8, 1, 1), torch.Generator().manual_seed(1)) < 1e-12
    small = conditional_variance(base + 0.05 * torch.randn(8, 50, 16, generator=gen), torch.Generator().manual_seed(1))
    large = conditional_variance(base + 0.5 * torch.randn(8, 50, 16, generator=gen), torch.Generator().manual_seed(1))
    assert 0 < small < large
    # scale-free: the features are normalised first
    assert abs(conditional_variance(3.0 * (base + 0.5 * torch.randn(8, 50, 16, generator=torch.Generator().manual_seed(5))), torch.Generator().manual_seed(1))
               - conditional_variance(base + 0.5 * torch.randn(8, 50, 16, generator=torch.Generator().manual_seed(5)), torch.Generator().manual_seed(1))) < 1e-6


def test_evaluate_invariance_records_both_measures(make_run, capsys) -> None:
    run = make_run("spirograph", train_size=120, test_size=40)
    assert main(["evaluate", str(run), "--invariance", "--no-plots", "--invariance-views", "3"]) == 0
    assert "conditional variance" in capsys.readouterr().out
    entry = json.loads((run / "eval" / "metrics.json").read_text())["results"]["invariance"]
    assert entry["metrics"]["conditional_variance"] > 0
    assert set(entry["metrics"]["augmentation_regression"]["per_factor"]) == {"h", "rback", "gfore", "gback", "bfore", "bback"}
    assert entry["protocol"]["views_per_image"] == 3


def test_evaluate_invariance_on_images_regresses_jitter(make_run, cifar_small: Path) -> None:
    run = make_run("cifar10", cifar_small)
    assert main(["evaluate", str(run), "--invariance", "--no-plots", "--invariance-views", "2", "--limit-train-images", "100"]) == 0
    entry = json.loads((run / "eval" / "metrics.json").read_text())["results"]["invariance"]
    assert set(entry["metrics"]["augmentation_regression"]["per_factor"]) == {"brightness", "contrast", "saturation", "hue"}
    assert main(["evaluate", str(run), "--invariance", "--invariance-views", "1"]) == 2
