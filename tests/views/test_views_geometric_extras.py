"""Vertical flips and rotations (--vflip-p, --rotation-p): the ops against their definitions, the parameters'
statistics and per-image independence, and a run without them drawing the views it always drew."""

from __future__ import annotations

import torch

from simclr.views import ops
from simclr.views.config import ViewConfig
from simclr.views.params import sample_view_params
from simclr.views.pipeline import SimCLRViews


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_rotation_turns_counter_clockwise_and_quarter_turns_are_exact() -> None:
    images = torch.rand(3, 3, 16, 16, generator=_gen(0))
    quarter = ops.rotate(images, torch.tensor([0.0, 90.0, 180.0]))
    assert torch.equal(quarter[0], images[0])  # angle 0 leaves the image as it is
    assert torch.equal(quarter[1], torch.rot90(images[1], 1, dims=(-2, -1)))  # rot90: counter-clockwise
    assert torch.equal(quarter[2], torch.rot90(images[2], 2, dims=(-2, -1)))
    # any other angle goes through the resampling path: a hair off 90 degrees lands on the quarter turn
    near = ops.rotate(images[1:2], torch.tensor([90.01]))
    assert (near - quarter[1:2]).abs().max() < 0.02
    # a small rotation keeps the centre and blackens the corners
    turned = ops.rotate(torch.ones(1, 3, 16, 16), torch.tensor([45.0]))
    assert turned[0, :, 8, 8].min() > 0.99 and turned[0, :, 0, 0].max() < 0.01


def test_vertical_flip_mirrors_top_and_bottom_where_asked() -> None:
    images = torch.rand(2, 3, 8, 8, generator=_gen(1))
    flipped = ops.vertical_flip(images, torch.tensor([True, False]))
    assert torch.equal(flipped[0], images[0].flip(-2)) and torch.equal(flipped[1], images[1])


def test_extra_parameters_follow_their_distribution_per_image() -> None:
    n = 20_000
    config = ViewConfig(size=8, vflip_p=0.3, rotation_p=0.6, rotation_degrees=20.0)
    params = sample_view_params(n, (16, 16), config, _gen(2))
    assert abs(params.vflip.float().mean().item() - 0.3) < 0.02
    rotated = params.rotation[params.rotation != 0]
    assert abs(rotated.numel() / n - 0.6) < 0.02
    assert rotated.abs().max() <= 20.0 and abs(rotated.mean().item()) < 0.5
    assert abs(rotated.var().item() - 40**2 / 12) < 5.0  # uniform on [-20, 20]
    # independent per image: the first and second halves (two views of the same images) do not move together
    first, second = params.rotation[: n // 2], params.rotation[n // 2 :]
    assert abs(torch.corrcoef(torch.stack([first, second]))[0, 1].item()) < 0.05
    quarter = sample_view_params(n, (16, 16), ViewConfig(size=8, rotation_p=1.0, rotation_quarter_turns=True), _gen(3))
    counts = torch.stack([(quarter.rotation == a).float().mean() for a in (0.0, 90.0, 180.0, 270.0)])
    assert torch.allclose(counts, torch.full((4,), 0.25), atol=0.02)


def test_without_extras_the_views_are_unchanged() -> None:
    """The extras are drawn after everything else and only when asked for: every other parameter of a view is
    the same with or without them, so runs that do not use them reproduce their views exactly."""
    plain = sample_view_params(64, (32, 32), ViewConfig(size=16), _gen(4))
    extra = sample_view_params(64, (32, 32), ViewConfig(size=16, vflip_p=0.5, rotation_p=0.5), _gen(4))
    for name in ("crop_boxes", "flip", "jitter", "jitter_on", "grayscale", "blur_on", "blur_sigma"):
        assert torch.equal(getattr(plain, name), getattr(extra, name)), name
    assert not plain.vflip.any() and not plain.rotation.any()


def test_pipeline_applies_the_vertical_flip_after_the_crop() -> None:
    images = (torch.rand(4, 3, 12, 12, generator=_gen(5)) * 255).to(torch.uint8)
    config = ViewConfig(
        size=12, crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip_p=0.0, jitter_p=0.0, grayscale_p=0.0, vflip_p=1.0
    )
    views = SimCLRViews(config)(images, _gen(6))
    expected = (images.float() / 255).flip(-2) * 2 - 1  # mean = std = 0.5
    assert torch.allclose(views[0], expected, atol=1e-5) and torch.allclose(views[1], expected, atol=1e-5)
