"""How invariant a representation is to its augmentations (Foster et al. 2020, arXiv:2010.09515, sec. 5).

Foster et al.'s two measures, both lower = more invariant, both on frozen backbone features in eval mode:

* **Conditional variance** (their code's ``scan_cond_var.py``): each test image is augmented ``views``
  times; the L2-normalised representations are projected on a random +-1 direction, and the variance of
  that projection across the image's views is averaged over images. It estimates how much the
  representation still moves when only the augmentation changes.
* **Predictability of the augmentation** (their code's ``predict_alpha.py``): a linear regression from the
  representation of one view to that view's parameters (the 4 colour-jitter parameters for images, the
  6 nuisance parameters for Spirograph), fitted on train views and scored on test views. A representation
  that has discarded the augmentation cannot predict it (R^2 near 0).

Three more say why the first two move: the exact share of the representation's variance that is
within-image (:func:`conditional_variance_fraction`), the conditional variance per view parameter (only
that one changes between views), and the training penalty itself measured on held-out images
(:func:`held_out_penalty`, the quantity ``--lambda-gp`` minimises, with its split over the parameters).

For images every view here has colour jitter on and no grayscale, so its parameters always act on it.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from simclr.data.store import ImageStore
from simclr.data.streaming import SplitImages
from simclr.evaluation.features import eval_mode
from simclr.evaluation.protocols.regression import linear_regression
from simclr.evaluation.recording import base_protocol
from simclr.evaluation.results import make_entry
from simclr.evaluation.session import EvalSession
from simclr.evaluation.view_features import ViewEncoder
from simclr.losses.invariance import penalty_terms, rademacher
from simclr.resolve import view_config


def conditional_variance(view_features: Tensor, generator: torch.Generator) -> float:
    """Mean over images of the variance, across one image's views, of its normalised representation
    projected on a random +-1 direction (one direction per image). ``view_features`` is ``(V, N, D)``."""
    u = F.normalize(view_features.float(), dim=-1)
    directions = rademacher((u.shape[1], u.shape[2]), generator, u)
    projections = (u * directions.unsqueeze(0)).sum(-1)  # (V, N)
    return float(projections.var(0, unbiased=True).mean())


def conditional_variance_per_parameter(
    encoder: ViewEncoder, store: ImageStore, generator: torch.Generator, views: int
) -> dict[str, float]:
    """The conditional variance when only one view parameter changes between an image's views (the others
    stay at one random draw per image), for each parameter: which nuisance the representation still
    follows. The first-order penalty weights a parameter by its range, so a wide, strongly non-linear one
    (Spirograph's h) can dominate the penalty while contributing little to the variance."""
    base = encoder.draw(store, generator)
    result: dict[str, float] = {}
    for column, name in enumerate(encoder.parameter_names):
        per_view = []
        for _ in range(views):
            params = base.params.clone()
            params[:, column] = encoder.draw(store, generator).params[:, column]
            per_view.append(encoder.encode_draw(store, replace(base, params=params)))
        result[name] = conditional_variance(torch.stack(per_view), generator)
    return result


def conditional_variance_fraction(view_features: Tensor) -> float:
    """The share of the normalised representation's total variance that is variance across an image's
    own views: ``mean_x tr Cov(u | x) / tr Cov(u)``, in [0, 1]. The conditional variance above is a
    random-projection estimate of the numerator; dividing by the total makes runs whose representations
    spread differently (a wide or a narrow cone of ``u``) comparable. ``view_features`` is ``(V, N, D)``."""
    u = F.normalize(view_features.double(), dim=-1)
    views, images = u.shape[0], u.shape[1]
    within = (u - u.mean(0, keepdim=True)).pow(2).sum(-1).mean() * views / (views - 1)
    total = (u - u.mean((0, 1), keepdim=True)).pow(2).sum(-1).mean() * (views * images) / (views * images - 1)
    return float(within / total) if float(total) > 0 else 0.0


class HeldOutPenalty(NamedTuple):
    """The training penalty on held-out images, and how its diagonal terms split over the view parameters."""

    value: float
    share_per_parameter: dict[str, float]


def held_out_penalty(
    encoder: ViewEncoder,
    store: ImageStore,
    generator: torch.Generator,
    *,
    draws: int = 100,
    normalize: bool = True,
    batch_size: int = 256,
) -> HeldOutPenalty:
    """The training penalty (:func:`~simclr.losses.gradient_penalty`, no clamp) measured on ``store``'s
    images with the frozen backbone in eval mode, in float32: the quantity ``--lambda-gp`` minimises, on
    images it was not trained on, so a run with and without the penalty can be compared on it directly.

    ``share_per_parameter`` is each parameter's diagonal term ``E[(g_k (a'_k - a1_k))^2]`` over their sum:
    where the penalty's gradient goes. On Spirograph the curve parameter h takes almost all of it (its
    image derivative grows with t / b along the curve), which is why a short run with the penalty buys
    invariance to h first (docs/REPRODUCING.md, "Invariance")."""
    draw = encoder.draw(store, generator)
    total, count = 0.0, len(store)
    diagonal = torch.zeros(len(encoder.parameter_names), dtype=torch.float64)
    with eval_mode(encoder.backbone) as backbone:
        for start in range(0, count, batch_size):
            stop = min(start + batch_size, count)
            leaf = draw.params[start:stop].to(encoder.device, torch.float32).requires_grad_(True)
            views = encoder.render(store, draw, start, stop, leaf)
            representation = backbone(views.contiguous(memory_format=torch.channels_last))
            redraws = encoder.redraw(stop - start, draws, generator).to(encoder.device)
            terms = penalty_terms(
                representation, leaf, redraws, normalize=normalize, generator=generator, create_graph=False
            ).detach()
            total += float(terms.sum(-1).pow(2).mean()) * (stop - start)
            diagonal += terms.pow(2).mean(0).sum(0).double().cpu()
    shares = diagonal / diagonal.sum() if float(diagonal.sum()) > 0 else diagonal
    return HeldOutPenalty(
        total / count, {name: float(v) for name, v in zip(encoder.parameter_names, shares, strict=True)}
    )


def _subset(store: SplitImages, limit: int, seed: int) -> ImageStore:
    """At most ``limit`` images of ``store`` (a seeded random choice), in memory: they are viewed many times."""
    if len(store) <= limit:
        return store.load()
    keep = torch.randperm(len(store), generator=torch.Generator().manual_seed(seed))[:limit].sort().values
    return store.subset(keep).load()


def run_invariance(
    session: EvalSession, *, views: int = 10, max_images: int = 2000, per_parameter_images: int = 500
) -> dict[str, Any]:
    """The invariance measures of a run; returns the ``invariance`` entry of ``metrics.json``. Foster et al.'s
    two measures draw from the generator first, so the diagnostics after them cannot change their values
    (docs/REPRODUCING.md, "Invariance")."""
    start = time.perf_counter()
    seed = session.options.seed
    if session.splits["train"].factors is not None:
        encoder = session.view_encoder()
    else:  # every view shows its jitter parameters: jitter always on, never grayscale
        base = view_config(session.config, session.info, session.image_size)
        encoder = session.view_encoder(replace(base, jitter_p=1.0, grayscale_p=0.0))
    test = _subset(session.splits["test"], max_images, seed)
    train = _subset(session.splits["train"], max_images, seed + 1)
    gen = torch.Generator().manual_seed(seed * 1000 + 77)
    per_view = torch.stack([encoder.encode(test, gen)[0] for _ in range(views)])
    cond_var = conditional_variance(per_view, gen)
    fraction = conditional_variance_fraction(per_view)
    train_feats, train_params = encoder.encode(train, gen)
    test_feats, test_params = encoder.encode(test, gen)
    regression = linear_regression(
        train_feats, train_params, test_feats, test_params, target_names=encoder.parameter_names, seed=seed
    )
    draws = session.config.gp_draws
    normalize = session.config.gp_normalization
    penalty = held_out_penalty(encoder, test, gen, draws=draws, normalize=normalize)
    per_parameter = conditional_variance_per_parameter(
        encoder, _subset(test, per_parameter_images, seed + 2), gen, views
    )
    metrics = {
        "conditional_variance": cond_var,
        "conditional_variance_fraction": fraction,
        "conditional_variance_per_parameter": per_parameter,
        "gradient_penalty": penalty.value,
        "gradient_penalty_share_per_parameter": penalty.share_per_parameter,
        "augmentation_regression": regression.metrics,
    }
    protocol = {
        **base_protocol(session),
        "views_per_image": views,
        "n_images_conditional_variance": len(test),
        "n_fit_augmentation_regression": len(train),
        "augmentation_parameters": list(encoder.parameter_names),
        "views": "fresh nuisance parameters"
        if encoder.renderer is not None
        else "the run's augmentation with colour jitter always on, no grayscale",
        "conditional_variance": "variance over an image's views of <u, eps>, u = normalised backbone features, "
        "eps random +-1; mean over images (lower = more invariant)",
        "conditional_variance_per_parameter": "the conditional variance when only that parameter changes between views",
        "n_images_per_parameter": min(len(test), per_parameter_images),
        "conditional_variance_fraction": "mean over images of tr Cov(u | image) / tr Cov(u), exact "
        "(lower = more invariant)",
        "gradient_penalty": f"the training penalty on the test images, eval mode, float32, {draws} re-draws, "
        "no clamp (lower = more invariant)",
        "gradient_penalty_normalization": normalize,
        "gradient_penalty_share_per_parameter": "each parameter's diagonal term E[(g_k (a'_k - a_k))^2] over "
        "their sum (where the penalty's gradient goes)",
        "augmentation_regression": "linear regression (L-BFGS, L2 chosen on validation) from one view's features "
        "to its parameters; train views -> test views (lower R^2 = more invariant)",
        "chosen_l2": regression.chosen_l2,
    }
    return make_entry("invariance", protocol, metrics, time.perf_counter() - start)
