"""evaluate --invariance: the conditional-variance metric and the augmentation regression."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from simclr.cli import main
from simclr.data.spirograph import make_spirograph_store
from simclr.evaluation.protocols.invariance import (
    conditional_variance,
    conditional_variance_fraction,
    conditional_variance_per_parameter,
    held_out_penalty,
)
from simclr.evaluation.view_features import ViewEncoder
from simclr.losses.invariance import gradient_penalty


def test_conditional_variance_is_zero_for_invariant_features_and_grows_with_view_noise() -> None:
    gen = torch.Generator().manual_seed(0)
    base = torch.randn(1, 50, 16, generator=gen)
    assert conditional_variance(base.repeat(8, 1, 1), torch.Generator().manual_seed(1)) < 1e-12
    small = conditional_variance(base + 0.05 * torch.randn(8, 50, 16, generator=gen), torch.Generator().manual_seed(1))
    large = conditional_variance(base + 0.5 * torch.randn(8, 50, 16, generator=gen), torch.Generator().manual_seed(1))
    assert 0 < small < large
    # scale-free: the features are normalised first
    assert (
        abs(
            conditional_variance(
                3.0 * (base + 0.5 * torch.randn(8, 50, 16, generator=torch.Generator().manual_seed(5))),
                torch.Generator().manual_seed(1),
            )
            - conditional_variance(
                base + 0.5 * torch.randn(8, 50, 16, generator=torch.Generator().manual_seed(5)),
                torch.Generator().manual_seed(1),
            )
        )
        < 1e-6
    )


def test_conditional_variance_fraction_is_the_within_image_share_of_the_variance() -> None:
    gen = torch.Generator().manual_seed(0)
    images = torch.randn(1, 400, 8, generator=gen)
    assert conditional_variance_fraction(images.repeat(5, 1, 1)) < 1e-12  # views identical: fully invariant
    views_only = torch.randn(5, 400, 8, generator=gen)  # nothing depends on the image
    assert abs(conditional_variance_fraction(views_only) - 1.0) < 0.02
    # u = normalise(e1 + 0.1 * noise): the exact trace ratio, not a projection estimate
    mixed = images + 0.3 * torch.randn(5, 400, 8, generator=gen)
    u = torch.nn.functional.normalize(mixed.double(), dim=-1)
    within = u.var(0, unbiased=True).sum(-1).mean()
    total = u.reshape(-1, 8).var(0, unbiased=True).sum()
    assert abs(conditional_variance_fraction(mixed) - float(within / total)) < 1e-9


class _Pixels(torch.nn.Module):
    """A fixed random linear map of the pixels: a 'backbone' whose penalty can be computed by hand."""

    def __init__(self, constant: bool = False) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(3 * 16 * 16, 5, generator=torch.Generator().manual_seed(2)) * 0.05)
        self.constant = constant

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x.reshape(x.shape[0], -1) @ self.weight
        return torch.ones_like(out) + 0.0 * out if self.constant else out


def _encoder(backbone: torch.nn.Module) -> ViewEncoder:
    return ViewEncoder(
        backbone, image_size=16, device=torch.device("cpu"), autocast_dtype=None, batch_size=8, view_config=None
    )


def test_held_out_penalty_is_the_training_penalty_on_fresh_renders() -> None:
    store = make_spirograph_store(20, seed=0, size=16)
    backbone = _Pixels()
    measured = held_out_penalty(
        _encoder(backbone), store, torch.Generator().manual_seed(3), draws=7, batch_size=8
    ).value
    # the same draws by hand, batch by batch (8, 8, 4 images), weighted by batch size
    encoder, gen = _encoder(backbone), torch.Generator().manual_seed(3)
    draw = encoder.draw(store, gen)
    expected = 0.0
    for start, stop in ((0, 8), (8, 16), (16, 20)):
        leaf = draw.params[start:stop].clone().requires_grad_(True)
        rep = backbone(encoder.render(store, draw, start, stop, leaf))
        redraws = encoder.redraw(stop - start, 7, gen)
        expected += float(gradient_penalty(rep, leaf, redraws, upper_limit=float("inf"), generator=gen).detach()) * (
            stop - start
        )
    assert abs(measured - expected / 20) < 1e-6 * max(1.0, expected)
    assert measured > 0
    assert (
        held_out_penalty(_encoder(_Pixels(constant=True)), store, torch.Generator().manual_seed(3), draws=7).value
        == 0.0
    )
    assert backbone.weight.grad is None  # measuring leaves the weights alone


class _BlueMean(torch.nn.Module):
    """Sees only the blue channel's mean: depends on bfore, bback (and h through the curve), never on
    rback, gfore or gback."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        blue = x[:, 2].mean((1, 2))
        return torch.stack([blue, torch.ones_like(blue)], 1)


def test_conditional_variance_per_parameter_finds_the_parameters_the_representation_follows() -> None:
    store = make_spirograph_store(30, seed=0, size=16)
    per_parameter = conditional_variance_per_parameter(
        _encoder(_BlueMean()), store, torch.Generator().manual_seed(0), views=4
    )
    assert list(per_parameter) == ["h", "rback", "gfore", "gback", "bfore", "bback"]
    for ignored in ("rback", "gfore", "gback"):
        assert per_parameter[ignored] < 1e-10
    assert per_parameter["bback"] > 1e-4 and per_parameter["bfore"] > 1e-6


def test_held_out_penalty_share_goes_only_to_parameters_the_representation_sees() -> None:
    store = make_spirograph_store(30, seed=0, size=16)
    shares = held_out_penalty(
        _encoder(_BlueMean()), store, torch.Generator().manual_seed(0), draws=5, normalize=False
    ).share_per_parameter
    assert list(shares) == ["h", "rback", "gfore", "gback", "bfore", "bback"]
    assert abs(sum(shares.values()) - 1.0) < 1e-9
    for ignored in ("rback", "gfore", "gback"):
        assert shares[ignored] == 0.0
    assert shares["bback"] > 0.01 and shares["bfore"] > 0.0


@pytest.mark.slow
def test_evaluate_invariance_records_both_measures(make_run, capsys) -> None:
    run = make_run("spirograph", train_size=120, test_size=40)
    assert main(["evaluate", str(run), "--invariance", "--no-plots", "--invariance-views", "3"]) == 0
    assert "conditional variance" in capsys.readouterr().out
    entry = json.loads((run / "eval" / "metrics.json").read_text())["results"]["invariance"]
    assert entry["metrics"]["conditional_variance"] > 0
    assert 0 < entry["metrics"]["conditional_variance_fraction"] < 1
    assert entry["metrics"]["gradient_penalty"] > 0
    assert set(entry["metrics"]["conditional_variance_per_parameter"]) == {
        "h",
        "rback",
        "gfore",
        "gback",
        "bfore",
        "bback",
    }
    shares = entry["metrics"]["gradient_penalty_share_per_parameter"]
    assert set(shares) == {"h", "rback", "gfore", "gback", "bfore", "bback"} and abs(sum(shares.values()) - 1) < 1e-6
    assert set(entry["metrics"]["augmentation_regression"]["per_factor"]) == {
        "h",
        "rback",
        "gfore",
        "gback",
        "bfore",
        "bback",
    }
    assert entry["protocol"]["views_per_image"] == 3


@pytest.mark.slow
def test_evaluate_invariance_on_images_regresses_jitter(make_run, cifar_small: Path) -> None:
    run = make_run("cifar10", cifar_small)
    assert (
        main(
            [
                "evaluate",
                str(run),
                "--invariance",
                "--no-plots",
                "--invariance-views",
                "2",
                "--limit-train-images",
                "100",
            ]
        )
        == 0
    )
    entry = json.loads((run / "eval" / "metrics.json").read_text())["results"]["invariance"]
    assert set(entry["metrics"]["augmentation_regression"]["per_factor"]) == {
        "brightness",
        "contrast",
        "saturation",
        "hue",
    }
    assert set(entry["metrics"]["conditional_variance_per_parameter"]) == {
        "brightness",
        "contrast",
        "saturation",
        "hue",
    }
    assert entry["metrics"]["gradient_penalty"] > 0
    assert main(["evaluate", str(run), "--invariance", "--invariance-views", "1"]) == 2
