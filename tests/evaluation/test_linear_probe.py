"""The L-BFGS linear probe: agrees with scikit-learn, chooses L2 without looking at the test split."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from simclr.evaluation.protocols.lbfgs import fit_linear, standardizer
from simclr.evaluation.protocols.linear import linear_probe


def gaussian_classes(
    n: int, dim: int = 32, classes: int = 10, spread: float = 2.2, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Overlapping Gaussian classes (a linear classifier cannot be perfect) with per-dimension scales."""
    gen = torch.Generator().manual_seed(seed)
    centers = torch.randn(classes, dim, generator=torch.Generator().manual_seed(123))
    labels = torch.randint(0, classes, (n,), generator=gen)
    scale = torch.linspace(0.5, 5.0, dim)
    x = (centers[labels] + spread * torch.randn(n, dim, generator=gen)) * scale + 3.0
    return x, labels


@pytest.mark.parametrize("l2", [1e-4, 1e-2])
def test_lbfgs_matches_sklearn_logistic_regression(l2: float) -> None:
    x_train, y_train = gaussian_classes(3000, seed=1)
    x_test, y_test = gaussian_classes(2000, seed=2)
    ours = fit_linear(x_train, y_train, loss="ce", l2=l2, standardize=True, num_outputs=10)
    our_top1 = float((ours(x_test).argmax(1) == y_test).float().mean())

    mean, std = standardizer(x_train, True)
    # sklearn minimises 0.5 ||W||^2 + C * sum(CE); ours mean(CE) + l2 ||W||^2  =>  C = 1 / (2 * l2 * N)
    reference = LogisticRegression(C=1.0 / (2 * l2 * len(y_train)), max_iter=5000, tol=1e-8)
    reference.fit(((x_train - mean) / std).numpy(), y_train.numpy())
    ref_top1 = reference.score(((x_test - mean) / std).numpy(), y_test.numpy())
    assert 0.3 < ref_top1 < 0.99, "the toy problem should be neither trivial nor hopeless"
    assert abs(our_top1 - ref_top1) <= 0.01
    # the same optimum, not just a similar accuracy: predicted probabilities agree closely
    ours_prob = torch.softmax(ours(x_test), 1).numpy()
    ref_prob = reference.predict_proba(((x_test - mean) / std).numpy())
    assert np.abs(ours_prob - ref_prob).max() < 0.02


def test_probe_with_selected_l2_is_within_a_point_of_sklearn() -> None:
    x_train, y_train = gaussian_classes(3000, seed=3)
    x_test, y_test = gaussian_classes(2000, seed=4)
    result = linear_probe(x_train, y_train, x_test, y_test, num_classes=10, seed=0)
    mean, std = standardizer(x_train, True)
    reference = LogisticRegression(C=1.0 / (2 * result.chosen_l2 * len(y_train)), max_iter=5000, tol=1e-8)
    reference.fit(((x_train - mean) / std).numpy(), y_train.numpy())
    ref_top1 = reference.score(((x_test - mean) / std).numpy(), y_test.numpy())
    assert abs(result.metrics["top1"] - ref_top1) <= 0.01
    assert result.n_fit + result.n_val == len(y_train)


def test_l2_is_chosen_without_the_test_split() -> None:
    """Changing the test split (even scrambling its labels) changes nothing about the chosen L2."""
    x_train, y_train = gaussian_classes(1500, seed=5)
    x_test, y_test = gaussian_classes(500, seed=6)
    first = linear_probe(x_train, y_train, x_test, y_test, num_classes=10, grid=(1e-5, 1e-3, 1e-1), seed=0)
    scrambled = y_test[torch.randperm(len(y_test), generator=torch.Generator().manual_seed(0))]
    second = linear_probe(x_train, y_train, x_test * -1.0, scrambled, num_classes=10, grid=(1e-5, 1e-3, 1e-1), seed=0)
    assert first.chosen_l2 == second.chosen_l2
    assert first.val_top1_by_l2 == second.val_top1_by_l2
    assert first.metrics["top1"] != second.metrics["top1"]


def test_stronger_l2_shrinks_weights() -> None:
    x, y = gaussian_classes(800, seed=7)
    weak = fit_linear(x, y, loss="ce", l2=1e-5, num_outputs=10)
    strong = fit_linear(x, y, loss="ce", l2=1e-1, num_outputs=10)
    assert strong.weight.norm() < 0.5 * weak.weight.norm()


def test_minibatch_sgd_reaches_the_full_batch_optimum_of_the_same_objective() -> None:
    """The fit used when features exceed the memory budget: same objective, nearly the same optimum."""
    from simclr.evaluation.protocols.minibatch_linear import (
        MinibatchSettings,
        chunked_standardizer,
        fit_linear_minibatch,
    )

    x, y = gaussian_classes(2000, seed=8)
    x_test, y_test = gaussian_classes(1000, seed=9)
    rows = torch.arange(0, 2000, 2)  # a fit on some rows only, gathered batch by batch
    full = fit_linear(x[rows], y[rows], loss="ce", l2=1e-2, num_outputs=10)
    mean, std = chunked_standardizer(x, rows, True, chunk=64)
    assert torch.allclose(mean, full.mean, atol=1e-4) and torch.allclose(std, full.std, rtol=1e-4)
    sgd = fit_linear_minibatch(
        x, y, rows, loss="ce", l2=1e-2, settings=MinibatchSettings(epochs=20, batch_size=100), num_outputs=10
    )
    # L-BFGS found the optimum: SGD (200 steps) cannot go below it, and ends within 0.5% of it
    assert full.loss - 1e-4 <= sgd.loss <= full.loss * 1.005
    full_top1 = float((full(x_test).argmax(1) == y_test).float().mean())
    sgd_top1 = float((sgd(x_test).argmax(1) == y_test).float().mean())
    assert abs(full_top1 - sgd_top1) <= 0.01
