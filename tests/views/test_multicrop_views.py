"""Multi-crop's local views (Caron et al. 2020, SwAV): N small views per image after the global ones, drawn
from the step's generator, so the same seed gives the same views and the global views stay those of a run
without local crops."""

from __future__ import annotations

import pytest
import torch

from simclr.errors import UserError
from simclr.views.config import ViewConfig
from simclr.views.factory import build_views
from simclr.views.params import sample_view_params
from simclr.views.pipeline import SimCLRViews

GLOBAL = ViewConfig(size=16)
LOCAL = ViewConfig(size=8, crop_scale=(0.05, 0.3))
BATCH = 8


def _images() -> torch.Tensor:
    return torch.randint(0, 256, (BATCH, 3, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(3))


def _views(seed: int, local_views: int = 3) -> list[torch.Tensor]:
    maker = SimCLRViews(GLOBAL, n_views=2, local_config=LOCAL, local_views=local_views)
    return maker(_images(), torch.Generator().manual_seed(seed))


def test_local_views_have_the_local_size_after_the_global_ones() -> None:
    views = _views(0)
    assert [tuple(v.shape) for v in views] == [(BATCH, 3, 16, 16)] * 2 + [(BATCH, 3, 8, 8)] * 3


def test_same_seed_same_views_and_the_global_views_are_unchanged() -> None:
    first, again, other = _views(0), _views(0), _views(1)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not torch.equal(first[2], other[2])
    plain = SimCLRViews(GLOBAL, n_views=2)(_images(), torch.Generator().manual_seed(0))
    assert all(torch.equal(a, b) for a, b in zip(first[:2], plain, strict=True))


def test_local_views_are_the_second_draw_of_the_generator() -> None:
    """Local view l of image i is ``apply`` of row ``l * B + i`` of a draw made right after the global one."""
    generator = torch.Generator().manual_seed(5)
    views = SimCLRViews(GLOBAL, n_views=2, local_config=LOCAL, local_views=2)(_images(), generator)
    replay = torch.Generator().manual_seed(5)
    sample_view_params(2 * BATCH, (16, 16), GLOBAL, replay)
    local_params = sample_view_params(2 * BATCH, (16, 16), LOCAL, replay)
    local_maker = SimCLRViews(LOCAL, n_views=2)
    for index in range(2):
        expected = local_maker.apply(_images(), local_params.narrow(index * BATCH, BATCH))
        torch.testing.assert_close(views[2 + index], expected)


def test_local_crops_are_refused_where_no_stored_image_is_cropped_here() -> None:
    for flag in ("rerender", "streamed"):
        with pytest.raises(UserError, match="--local-crops"):
            build_views(16, GLOBAL, 2, local_config=LOCAL, local_views=2, **{flag: True})
    with pytest.raises(UserError, match="local_config"):
        SimCLRViews(GLOBAL, n_views=2, local_views=2)
