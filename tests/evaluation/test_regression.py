"""Factor regression by L-BFGS recovers linear factors and reports MSE and R^2 per factor."""

from __future__ import annotations

import torch

from simclr.evaluation.metrics import regression_metrics
from simclr.evaluation.protocols.lbfgs import fit_linear
from simclr.evaluation.protocols.regression import linear_regression


def test_recovers_known_linear_factors() -> None:
    gen = torch.Generator().manual_seed(0)
    mixing = torch.randn(24, 4, generator=gen)
    offset = torch.tensor([3.0, 0.6, 0.6, 0.7])

    def sample(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.randn(n, 24, generator=gen) * 2 + 1
        return x, x @ mixing + offset

    x_train, y_train = sample(600)
    x_test, y_test = sample(200)
    result = linear_regression(x_train, y_train, x_test, y_test, target_names=("m", "b", "sigma", "rfore"), seed=0)
    assert result.metrics["r2"] > 0.9999
    assert result.metrics["mse"] < 1e-3
    assert set(result.metrics["per_factor"]) == {"m", "b", "sigma", "rfore"}
    # the fit in original units equals the generating map
    fit = fit_linear(x_train, y_train, loss="mse", l2=1e-8, standardize=False)
    assert torch.allclose(fit.weight.T, mixing, atol=1e-3)
    assert torch.allclose(fit.bias, offset, atol=1e-3)


def test_noise_lowers_r2_of_the_noisy_factor_only() -> None:
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(1000, 8, generator=gen)
    y = torch.stack([x[:, 0] * 2, x[:, 1] + 3.0 * torch.randn(1000, generator=gen)], 1)
    result = linear_regression(x[:800], y[:800], x[800:], y[800:], target_names=("clean", "noisy"), seed=0)
    per = result.metrics["per_factor"]
    assert per["clean"]["r2"] > 0.98  # one L2 weight serves both targets, so the clean one is shrunk a little
    assert per["noisy"]["r2"] < 0.3


def test_regression_metrics_against_definitions() -> None:
    pred = torch.tensor([[1.0, 0.0], [2.0, 1.0], [3.0, 2.0]])
    target = torch.tensor([[1.0, 1.0], [2.0, 1.0], [4.0, 1.0]])
    metrics = regression_metrics(pred, target, ("a", "b"))
    assert abs(metrics["per_factor"]["a"]["mse"] - 1 / 3) < 1e-9
    var_a = 14 / 9  # mean 7/3, squared deviations 16/9 + 1/9 + 25/9
    assert abs(metrics["per_factor"]["a"]["r2"] - (1 - (1 / 3) / var_a)) < 1e-9
    assert abs(metrics["mse"] - (1 / 3 + 2 / 3) / 2) < 1e-9
