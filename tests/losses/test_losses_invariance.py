"""The gradient penalty (Foster et al. 2020): its definition, its gradient against finite differences
through the real view pipelines, and that --lambda-gp 0 is plain SimCLR."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from simclr.cli import main
from simclr.losses.invariance import gradient_penalty, pin_parameters
from simclr.views.config import ViewConfig
from simclr.views.pipeline import SimCLRViews
from simclr.views.spirograph import SpirographViews, sample_generative, sample_nuisance


def test_matches_hand_computed_linear_case() -> None:
    """h = a @ W without normalisation: ds/da = eps @ W^T, so GP = mean((eps W^T . (a' - a))^2)."""
    a = torch.rand(5, 3, dtype=torch.float64, requires_grad=True)
    w = torch.randn(3, 7, dtype=torch.float64)
    redraws = torch.rand(11, 5, 3, dtype=torch.float64)
    penalty = gradient_penalty(
        a @ w, a, redraws, normalize=False, upper_limit=1e9, generator=torch.Generator().manual_seed(1)
    )
    signs = torch.randint(0, 2, (5, 7), generator=torch.Generator().manual_seed(1)).double() * 2 - 1
    grad = signs @ w.T
    expected = (((redraws - a.detach()) * grad).sum(-1) ** 2).mean()
    assert torch.allclose(penalty, expected)


def test_pinned_parameter_drops_out_of_the_penalty() -> None:
    """--gp-exclude: pinning column 0's re-draws to the first view leaves the hand-computed penalty over
    columns 1, 2."""
    a = torch.rand(5, 3, dtype=torch.float64, requires_grad=True)
    w = torch.randn(3, 7, dtype=torch.float64)
    redraws = torch.rand(11, 5, 3, dtype=torch.float64)
    pinned = pin_parameters(redraws, a, (0,))
    assert torch.equal(pinned[..., 0], a.detach()[:, 0].expand(11, 5)) and torch.equal(
        pinned[..., 1:], redraws[..., 1:]
    )
    penalty = gradient_penalty(
        a @ w, a, pinned, normalize=False, upper_limit=1e9, generator=torch.Generator().manual_seed(1)
    )
    signs = torch.randint(0, 2, (5, 7), generator=torch.Generator().manual_seed(1)).double() * 2 - 1
    grad = signs @ w.T
    expected = (((redraws - a.detach())[..., 1:] * grad[:, 1:]).sum(-1) ** 2).mean()
    assert torch.allclose(penalty, expected)
    assert pin_parameters(redraws, a, ()) is redraws


def test_invariant_representation_has_zero_penalty_and_clamp() -> None:
    a = torch.rand(4, 2, requires_grad=True)
    h = torch.ones(4, 3) + 0.0 * a.sum(1, keepdim=True)
    assert float(gradient_penalty(h, a, torch.rand(6, 4, 2)).detach()) == 0.0
    big = gradient_penalty(a.repeat(1, 2) * 100, a, torch.rand(6, 4, 2) + 5, normalize=False, upper_limit=0.5)
    assert float(big.detach()) == 0.5


class TinyNet(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1).double()
        self.fc = torch.nn.Linear(4, 6).double()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.tanh(self.conv(x)).mean((2, 3)))


def _image_problem():
    config = ViewConfig(
        size=8, jitter_p=1.0, grayscale_p=0.0, jitter_strength=0.5, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25)
    )
    views = SimCLRViews(config, n_views=2)
    images = torch.rand(3, 3, 10, 10, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    gen = torch.Generator().manual_seed(5)
    rendered, leaf = views.views_with_grad(images, gen)
    redraws = views.redraw_invariance_params(3, 4, gen, torch.device("cpu")).double()
    return views, images, rendered, leaf, redraws


def test_image_views_with_grad_are_the_plain_views() -> None:
    views, images, rendered, leaf, _ = _image_problem()
    plain = views(images.float(), torch.Generator().manual_seed(5))
    assert leaf.requires_grad and leaf.shape == (3, 4)
    for a, b in zip(rendered, plain, strict=True):
        assert torch.equal(a.float(), b)


def test_penalty_gradient_through_image_views_matches_finite_differences() -> None:
    """d GP / d(jitter parameters) through colour jitter -> network -> penalty, in float64."""
    views, images, _, leaf, redraws = _image_problem()
    net = TinyNet()
    from simclr.views.params import sample_view_params

    params = sample_view_params(3, (10, 10), views.config, torch.Generator().manual_seed(9))
    params.jitter = params.jitter.double()

    def scalar_and_penalty(jitter: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        p = params
        p.jitter = jitter
        h = net(views.apply(images, p))
        u = torch.nn.functional.normalize(h, dim=1)
        signs = torch.randint(0, 2, u.shape, generator=torch.Generator().manual_seed(2)).double() * 2 - 1
        return (signs * u).sum(), gradient_penalty(
            h, jitter, redraws, upper_limit=1e9, generator=torch.Generator().manual_seed(2)
        )

    start = params.jitter.detach().clone().requires_grad_(True)
    # the quantity the penalty is built from: ds/d(params), checked against finite differences
    assert torch.autograd.gradcheck(lambda j: scalar_and_penalty(j)[0], (start,), eps=1e-6, atol=1e-5)
    # and the penalty itself is differentiable w.r.t. the parameters (second order through the views)
    assert torch.autograd.gradcheck(lambda j: scalar_and_penalty(j)[1], (start,), eps=1e-6, atol=1e-5)


def test_penalty_gradient_through_spirograph_matches_finite_differences() -> None:
    views = SpirographViews(n_views=2, size=12)
    gen = torch.Generator().manual_seed(0)
    factors = sample_generative(3, gen).double()
    nuisance = sample_nuisance(3, gen).double()
    redraws = sample_nuisance(4 * 3, gen).double().reshape(4, 3, 6)
    torch.manual_seed(1)
    net = torch.nn.Linear(3 * 12 * 12, 5).double()

    def penalty(n: torch.Tensor) -> torch.Tensor:
        h = net(views.render_with(factors, n).reshape(3, -1))
        return gradient_penalty(h, n, redraws, upper_limit=1e9, generator=torch.Generator().manual_seed(2))

    assert torch.autograd.gradcheck(penalty, (nuisance.clone().requires_grad_(True),), eps=1e-6, atol=1e-5)
    rendered, leaf = views.views_with_grad(factors.float(), torch.Generator().manual_seed(4))
    plain = views(factors.float(), torch.Generator().manual_seed(4))
    assert leaf.shape == (3, 6) and all(torch.equal(a, b) for a, b in zip(rendered, plain, strict=True))


def _rows(path: Path) -> list[dict[str, str]]:
    with (path / "metrics.csv").open() as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow
def test_lambda_zero_is_plain_simclr_and_penalty_only_adds(tmp_path: Path) -> None:
    common = [
        "pretrain",
        "--dataset",
        "spirograph",
        "--train-size",
        "64",
        "--test-size",
        "16",
        "--batch-size",
        "16",
        "--max-steps",
        "2",
        "--epochs",
        "1",
        "--quiet",
        "--gp-draws",
        "4",
        "--precision",
        "32",
        "--image-size",
        "16",
    ]
    # Like with like: float32 everywhere, and the plain runs in the default memory format that the penalty
    # run trains in on the CPU, so the comparison does not depend on the CPU's bf16 or layout kernels.
    plain_format = ["--no-channels-last"]
    assert main([*common, *plain_format, "--out", str(tmp_path / "plain")]) == 0
    assert main([*common, *plain_format, "--out", str(tmp_path / "zero"), "--lambda-gp", "0"]) == 0
    assert main([*common, "--out", str(tmp_path / "gp"), "--lambda-gp", "0.01", "--gp-upper-limit", "100000"]) == 0
    plain, zero, gp = _rows(tmp_path / "plain"), _rows(tmp_path / "zero"), _rows(tmp_path / "gp")
    assert [r["train_loss"] for r in plain] == [r["train_loss"] for r in zero]
    assert all(r["gradient_penalty"] == "" for r in zero)
    # step 0: same weights and same views, so total = plain NT-Xent + lambda * GP
    penalty = float(gp[0]["gradient_penalty"])
    assert penalty > 0
    assert float(gp[0]["train_loss"]) == pytest.approx(
        float(plain[0]["train_loss"]) + 0.01 * penalty, rel=1e-4, abs=1e-4
    )
    # on the CPU the penalty trains in the default memory format (its double backward is faster there)
    assert "memory format: contiguous" in (tmp_path / "gp" / "train.log").read_text()
    assert "memory format" not in (tmp_path / "plain" / "train.log").read_text()
    # the log says what the penalty covers, and on Spirograph that h dominates it
    gp_log = (tmp_path / "gp" / "train.log").read_text()
    assert "gradient penalty: lambda 0.01 over h, rback, gfore, gback, bfore, bback; 4 re-draws, clamp 100000" in gp_log
    assert "h dominates this penalty on Spirograph" in gp_log
    assert "gradient penalty" not in (tmp_path / "zero" / "train.log").read_text()
    # under a clamp of 100000 the logged penalty is the unclamped one, and no saturation warning
    assert [r["gradient_penalty"] for r in gp] == [r["gradient_penalty_unclamped"] for r in gp]
    assert "above its clamp" not in gp_log
    # a clamp below the penalty: no gradient from it, so step 1 trains exactly as plain SimCLR; the log says so
    assert main([*common, "--out", str(tmp_path / "clamped"), "--lambda-gp", "0.01", "--gp-upper-limit", "1e-6"]) == 0
    clamped = _rows(tmp_path / "clamped")
    assert all(float(r["gradient_penalty"]) == pytest.approx(1e-6) for r in clamped)
    assert all(float(r["gradient_penalty_unclamped"]) > 1e-6 for r in clamped)
    assert float(clamped[1]["train_loss"]) == pytest.approx(float(plain[1]["train_loss"]) + 0.01 * 1e-6, rel=2e-3)
    assert (
        "above its clamp (--gp-upper-limit 1e-06) on 2 of 2 steps, where it adds no gradient"
        in (tmp_path / "clamped" / "train.log").read_text()
    )
    # --gp-exclude h: same weights, views and re-draws at step 0, h's term gone, so a smaller penalty (h dominates)
    assert (
        main(
            [
                *common,
                "--out",
                str(tmp_path / "no-h"),
                "--lambda-gp",
                "0.01",
                "--gp-upper-limit",
                "100000",
                "--gp-exclude",
                "h",
            ]
        )
        == 0
    )
    without_h = float(_rows(tmp_path / "no-h")[0]["gradient_penalty"])
    log_without_h = (tmp_path / "no-h" / "train.log").read_text()
    assert "over rback, gfore, gback, bfore, bback;" in log_without_h and "h dominates" not in log_without_h
    assert 0 < without_h < 0.5 * penalty


def test_channels_last_is_kept_except_for_the_penalty_on_the_cpu() -> None:
    from simclr.hardware import use_channels_last

    assert use_channels_last(True, gpu=False, gradient_penalty=False)
    assert not use_channels_last(True, gpu=False, gradient_penalty=True)
    assert use_channels_last(True, gpu=True, gradient_penalty=True)
    assert not use_channels_last(False, gpu=True, gradient_penalty=False)
