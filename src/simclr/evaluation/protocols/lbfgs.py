"""Full-batch L-BFGS fits of a linear layer on frozen features, with the L2 weight chosen on validation.

Foster et al. 2020's code (``lbfgs_linear_clf.py``) fits ``nn.Linear`` by L-BFGS on the whole
training set, minimising the mean loss plus ``l2 * ||W||^2`` (bias not penalised), for a log-spaced
grid of ``l2`` values, but picks the value with the best *test* accuracy. Here the grid is scored on a
validation split carved from the training set, the chosen value is refit on the whole training set,
and only then is the test split touched, once. The same procedure serves classification
(cross-entropy) and Spirograph's factor regression (mean squared error).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from simclr.evaluation.options import DEFAULT_L2_GRID, DEFAULT_MAX_ITER
from simclr.losses.classification import classification_loss

SMALL_PROBLEM = 4_000_000  # feature-matrix entries below which one thread is faster than several


@contextmanager
def _threads_for(entries: int) -> Iterator[None]:
    """One intra-op thread for small fits: thousands of tiny L-BFGS steps are dominated by thread
    wake-ups, and on a busy machine extra threads spin."""
    previous = torch.get_num_threads()
    if entries < SMALL_PROBLEM and previous > 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@dataclass
class LinearFit:
    """``y ~ x @ weight.T + bias`` in the (optionally standardised) feature space of ``mean``/``std``."""

    weight: Tensor
    bias: Tensor
    mean: Tensor
    std: Tensor
    loss: float
    iterations: int

    def __call__(self, features: Tensor) -> Tensor:
        x = (features.float() - self.mean) / self.std
        return x @ self.weight.T + self.bias


def standardizer(features: Tensor, standardize: bool) -> tuple[Tensor, Tensor]:
    """Per-dimension mean and std of the fit data (identity when ``standardize`` is False); constant
    dimensions keep std 1 so they cannot blow up."""
    dim = features.shape[1]
    if not standardize:
        return torch.zeros(dim), torch.ones(dim)
    mean = features.float().mean(0)
    std = features.float().std(0, unbiased=False)
    return mean, torch.where(std > 1e-6, std, torch.ones_like(std))


def data_loss(out: Tensor, targets: Tensor, loss: str, focal_gamma: float = 0.0) -> Tensor:
    """The data term of a linear fit: classification loss for ``"ce"``, summed squared error per row for ``"mse"``."""
    if loss == "ce":
        return classification_loss(out, targets, focal_gamma)
    return F.mse_loss(out, targets, reduction="none").sum(1).mean()


def fit_linear(
    features: Tensor,
    targets: Tensor,
    *,
    loss: str,
    l2: float,
    standardize: bool = True,
    max_iter: int = DEFAULT_MAX_ITER,
    num_outputs: int | None = None,
    init: LinearFit | None = None,
    tolerance: float = 1e-5,
    focal_gamma: float = 0.0,
) -> LinearFit:
    """Minimise ``mean loss + l2 * ||W||^2`` by full-batch L-BFGS (strong-Wolfe line search), float32.

    ``loss`` is ``"ce"`` (``targets`` are class indices, ``num_outputs`` classes; the focal loss with
    ``focal_gamma`` > 0) or ``"mse"`` (``targets`` is ``(N, K)``). ``init`` warm-starts from a previous fit
    with the same standardisation, which makes sweeping an L2 grid cheap. Cross-entropy and MSE are convex,
    so their optimum does not depend on the start; the focal loss is not, and starts from zero weights.
    """
    if loss not in ("ce", "mse"):
        raise ValueError(f"loss must be 'ce' or 'mse', got {loss!r}")
    mean, std = (init.mean, init.std) if init is not None else standardizer(features, standardize)
    x = (features.float() - mean) / std
    if loss == "ce":
        y = targets.long()
        outputs = num_outputs if num_outputs is not None else int(y.max()) + 1
    else:
        y = targets.float()
        outputs = y.shape[1]
    weight = torch.zeros(outputs, x.shape[1]) if init is None else init.weight.clone()
    bias = torch.zeros(outputs) if init is None else init.bias.clone()
    if init is None and loss == "mse":
        bias = y.mean(0).clone()
    weight.requires_grad_(True)
    bias.requires_grad_(True)
    optimizer = torch.optim.LBFGS(
        [weight, bias],
        lr=1.0,
        max_iter=max_iter,
        tolerance_grad=tolerance,
        tolerance_change=1e-10,
        history_size=20,
        line_search_fn="strong_wolfe",
    )
    calls = 0

    def penalised_loss() -> Tensor:
        return data_loss(x @ weight.T + bias, y, loss, focal_gamma) + l2 * weight.pow(2).sum()

    def objective() -> Tensor:
        nonlocal calls
        calls += 1
        optimizer.zero_grad()
        value = penalised_loss()
        value.backward()
        return value

    with torch.enable_grad(), _threads_for(x.numel()):
        optimizer.step(objective)  # type: ignore[arg-type]
    with torch.no_grad():
        final = float(penalised_loss())
    return LinearFit(weight.detach(), bias.detach(), mean, std, final, calls)


@dataclass
class GridSearch:
    """The L2 value chosen on validation and every grid point's validation score."""

    chosen_l2: float
    scores: dict[float, float]


Solver = Callable[[Tensor | None, float, LinearFit | None], LinearFit]
"""Fits the rows given (indices into the features; None: all of them) with an L2 weight, warm-started from a
previous fit: full-batch L-BFGS (:func:`fit_linear`) or mini-batch SGD
(:mod:`simclr.evaluation.protocols.minibatch_linear`)."""


def choose_l2(
    fit_rows: Tensor,
    val_features: Tensor,
    val_targets: Tensor,
    *,
    solve: Solver,
    grid: Sequence[float] = DEFAULT_L2_GRID,
    score: Callable[[Tensor, Tensor], float],
) -> GridSearch:
    """Fit every L2 value on ``fit_rows`` and score it on validation (higher is better).

    Ties go to the larger L2 (the simpler model). Fits run from the largest L2 down, each warm-started
    from the previous solution.
    """
    if not grid:
        raise ValueError("the L2 grid is empty")
    scores: dict[float, float] = {}
    previous: LinearFit | None = None
    for l2 in sorted(grid, reverse=True):
        fit = solve(fit_rows, l2, previous)
        value = score(fit(val_features), val_targets)
        scores[l2] = value if math.isfinite(value) else -math.inf
        previous = fit
    best = max(scores.values())
    chosen = max(l2 for l2, value in scores.items() if value == best)
    return GridSearch(chosen_l2=chosen, scores=dict(sorted(scores.items())))


def fit_with_chosen_l2(
    features: Tensor,
    targets: Tensor,
    fit_idx: Tensor,
    val_idx: Tensor,
    *,
    loss: str,
    grid: Sequence[float] = DEFAULT_L2_GRID,
    score: Callable[[Tensor, Tensor], float],
    standardize: bool = True,
    max_iter: int = DEFAULT_MAX_ITER,
    num_outputs: int | None = None,
    solve: Solver | None = None,
    focal_gamma: float = 0.0,
) -> tuple[LinearFit, GridSearch]:
    """The whole protocol on the training split alone: choose L2 on ``val_idx`` after fitting on
    ``fit_idx``, then refit the chosen value on all of ``features``. The caller scores the test split once.
    ``solve`` replaces the full-batch L-BFGS fit (then ``max_iter`` is unused)."""

    def full_batch(rows: Tensor | None, l2: float, init: LinearFit | None) -> LinearFit:
        x, y = (features, targets) if rows is None else (features[rows], targets[rows])
        return fit_linear(
            x,
            y,
            loss=loss,
            l2=l2,
            standardize=standardize,
            max_iter=max_iter,
            num_outputs=num_outputs,
            init=init,
            focal_gamma=focal_gamma,
        )

    solver = solve or full_batch
    search = choose_l2(fit_idx, features[val_idx], targets[val_idx], solve=solver, grid=grid, score=score)
    return solver(None, search.chosen_l2, None), search


def lbfgs_protocol(
    grid: Sequence[float],
    chosen_l2: float,
    val_scores: tuple[str, Mapping[float, float]],
    *,
    max_iter: int,
    standardize: bool,
    selection: str,
    n_fit: int,
    n_val: int,
    optimizer: str = "L-BFGS (full batch, strong Wolfe)",
) -> dict[str, object]:
    """The ``metrics.json`` protocol fields every L-BFGS fit shares; ``val_scores`` is (field name,
    validation score per L2 value)."""
    name, scores = val_scores
    return {
        "optimizer": optimizer,
        **({"max_iter": max_iter} if optimizer.startswith("L-BFGS") else {}),
        "standardize": standardize,
        "l2_grid": sorted(grid),
        "l2_selection": selection,
        "chosen_l2": chosen_l2,
        name: {f"{k:g}": v for k, v in scores.items()},
        "n_fit": n_fit,
        "n_val": n_val,
    }
