"""Spirograph, the dataset (Foster et al. 2020, arXiv:2010.09515): images rendered once from seeded draws
of the generative factors (the regression targets, kept beside the pixels) and of the nuisance parameters.

The train split renders ``SPIROGRAPH_TRAIN_SIZE`` images from :data:`SPIROGRAPH_SEED`, the test split
``SPIROGRAPH_TEST_SIZE`` from the next seed, at 32 px unless another size is asked for. The renderer, its
parameter ranges and the views (re-renders with fresh nuisance parameters) are
:mod:`simclr.views.spirograph`.
"""

from __future__ import annotations

import torch

from simclr.data.request import LoadRequest
from simclr.data.sampling import stratified_subset
from simclr.data.store import ImageStore
from simclr.errors import UserError
from simclr.views.spirograph import render_spirograph, sample_generative, sample_nuisance

__all__ = [
    "SPIROGRAPH_IMAGE_SIZE",
    "SPIROGRAPH_SEED",
    "SPIROGRAPH_TEST_SIZE",
    "SPIROGRAPH_TRAIN_SIZE",
    "load_spirograph",
    "make_spirograph_store",
]

# Generator seed of the training images, fixed so that every run draws the same ones (the value itself is
# arbitrary); the test split uses SPIROGRAPH_SEED + 1.
SPIROGRAPH_SEED = 3
SPIROGRAPH_TRAIN_SIZE = 100_000
SPIROGRAPH_TEST_SIZE = 20_000
SPIROGRAPH_IMAGE_SIZE = 32
_RENDER_CHUNK = 2048


def _to_uint8(images: torch.Tensor) -> torch.Tensor:
    return (images * 255.0).round_().clamp_(0, 255).to(torch.uint8)


def make_spirograph_store(
    n: int,
    seed: int,
    size: int = 32,
    *,
    limit: int | None = None,
    limit_seed: int = 0,
) -> ImageStore:
    """``n`` Spirograph images: factors (and one fixed nuisance draw per image, used for the stored
    pictures) come from ``torch.Generator().manual_seed(seed)``. Labels are -1 and the factors are
    kept in ``ImageStore.factors``. ``limit`` renders only a random subset of that many images
    (chosen with ``limit_seed``) of the same ``n``-image set."""
    if n <= 0:
        raise ValueError(f"n must be positive, got {n}")
    gen = torch.Generator().manual_seed(int(seed))
    factors = sample_generative(n, gen)
    nuisance = sample_nuisance(n, gen)
    if limit is not None and limit < n:
        keep = stratified_subset(torch.full((n,), -1, dtype=torch.int64), limit, limit_seed)
        factors, nuisance = factors[keep], nuisance[keep]
    count = factors.shape[0]
    images = torch.empty((count, 3, size, size), dtype=torch.uint8)
    with torch.no_grad():
        for lo in range(0, count, _RENDER_CHUNK):
            hi = min(lo + _RENDER_CHUNK, count)
            images[lo:hi] = _to_uint8(render_spirograph(factors[lo:hi], nuisance[lo:hi], size))
    return ImageStore(
        images=images,
        labels=torch.full((count,), -1, dtype=torch.int64),
        class_names=[],
        factors=factors.contiguous(),
    )


def load_spirograph(request: LoadRequest) -> ImageStore:
    """One split of Spirograph: ``request.generated_train_size`` training images (default
    :data:`SPIROGRAPH_TRAIN_SIZE`) and ``generated_test_size`` test images (default a fifth of train), rendered
    from :data:`SPIROGRAPH_SEED` (train) and the next seed (test) at ``request.image_size``."""
    train_size = request.generated_train_size
    if train_size is not None and train_size < 5:
        raise UserError(f"spirograph size must be >= 5, got {train_size}; pass e.g. --spirograph-size 10000")
    n_train = train_size or SPIROGRAPH_TRAIN_SIZE
    n_test = request.generated_test_size or max(1, n_train // 5)
    test = request.split == "test"
    size = request.image_size or SPIROGRAPH_IMAGE_SIZE
    store_seed = SPIROGRAPH_SEED + (1 if test else 0)
    return make_spirograph_store(
        n_test if test else n_train, store_seed, size, limit=request.limit, limit_seed=request.seed
    )
