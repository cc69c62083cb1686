"""Batched per-image ops against torchvision.transforms.functional and exact properties."""

import pytest
import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF

from simclr.views import ops

B = 6


@pytest.fixture
def images() -> torch.Tensor:
    return torch.rand(B, 3, 16, 16, generator=torch.Generator().manual_seed(0))


@pytest.fixture
def factors() -> torch.Tensor:
    return torch.tensor([0.0, 0.4, 0.8, 1.0, 1.3, 1.8])


def _per_image_tv(fn, images: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    return torch.stack([fn(img, float(v)) for img, v in zip(images, values, strict=True)])


def test_brightness_matches_torchvision(images, factors) -> None:
    ours = ops.adjust_brightness(images, factors)
    ref = _per_image_tv(TF.adjust_brightness, images, factors)
    torch.testing.assert_close(ours, ref, atol=1e-6, rtol=0)


# torchvision's grayscale uses 0.2989 for red, ours the BT.601 0.299, so gray values differ by up
# to 1e-4 * red; the comparisons below allow for that and a second check uses the exact formula.
TV_GRAY_ATOL = 1.2e-4


def test_grayscale_matches_torchvision_and_bt601(images) -> None:
    ours = ops.rgb_to_grayscale(images)
    assert ours.shape == images.shape
    assert torch.equal(ours[:, 0], ours[:, 1]) and torch.equal(ours[:, 1], ours[:, 2])
    ref = torch.stack([TF.rgb_to_grayscale(img, num_output_channels=3) for img in images])
    torch.testing.assert_close(ours, ref, atol=TV_GRAY_ATOL, rtol=0)
    exact = 0.299 * images[:, 0] + 0.587 * images[:, 1] + 0.114 * images[:, 2]
    torch.testing.assert_close(ours[:, 0], exact, atol=1e-6, rtol=0)
    white = torch.ones(1, 3, 2, 2)
    torch.testing.assert_close(ops.rgb_to_grayscale(white), white)


def test_random_grayscale_only_where_masked(images) -> None:
    mask = torch.tensor([True, False] * 3)
    out = ops.random_grayscale(images, mask)
    assert torch.equal(out[~mask], images[~mask])
    torch.testing.assert_close(out[mask], ops.rgb_to_grayscale(images[mask]))


def test_contrast_matches_torchvision(images, factors) -> None:
    ours = ops.adjust_contrast(images, factors)
    ref = _per_image_tv(TF.adjust_contrast, images, factors)
    torch.testing.assert_close(ours, ref, atol=TV_GRAY_ATOL, rtol=0)
    gray_mean = ops.rgb_to_grayscale(images)[:, :1].mean(dim=(1, 2, 3)).view(-1, 1, 1, 1)
    f = factors.view(-1, 1, 1, 1)
    exact = (f * images + (1 - f) * gray_mean).clamp(0, 1)
    torch.testing.assert_close(ours, exact, atol=1e-6, rtol=0)
    # factor 0 gives a flat image per image
    assert ours[0].std() < 1e-6


def test_saturation_matches_torchvision(images, factors) -> None:
    ours = ops.adjust_saturation(images, factors)
    ref = _per_image_tv(TF.adjust_saturation, images, factors)
    torch.testing.assert_close(ours, ref, atol=TV_GRAY_ATOL, rtol=0)
    torch.testing.assert_close(ours[0], ops.rgb_to_grayscale(images[:1])[0], atol=1e-6, rtol=0)


def test_hue_zero_is_identity_and_full_turn_is_identity(images) -> None:
    assert torch.equal(ops.adjust_hue(images, torch.zeros(B)), images)
    torch.testing.assert_close(ops.adjust_hue(images, torch.ones(B)), images, atol=1e-5, rtol=0)


def test_hue_preserves_luma_and_composes() -> None:
    # Low-saturation images so that no channel is clamped.
    g = torch.Generator().manual_seed(1)
    x = 0.4 + 0.2 * torch.rand(B, 3, 8, 8, generator=g)
    shift = torch.linspace(-0.5, 0.5, B)
    out = ops.adjust_hue(x, shift)
    assert (out > 0).all() and (out < 1).all()
    torch.testing.assert_close(ops.rgb_to_grayscale(out), ops.rgb_to_grayscale(x), atol=1e-6, rtol=0)
    assert (out - x).abs().amax(dim=(1, 2, 3))[shift.abs() > 0.05].min() > 1e-2  # it does change
    a, b = torch.full((B,), 0.13), torch.full((B,), -0.31)
    torch.testing.assert_close(ops.adjust_hue(ops.adjust_hue(x, a), b), ops.adjust_hue(x, a + b), atol=1e-5, rtol=0)


@pytest.mark.parametrize("shift", [0.02, 0.1, -0.1])
def test_hue_moves_like_torchvision(shift: float) -> None:
    # YIQ rotation and torchvision's HSV hue shift differ, but move colours the same way by a
    # similar amount (the opposite sign points the other way).
    g = torch.Generator().manual_seed(2)
    x = 0.2 + 0.6 * torch.rand(4, 3, 8, 8, generator=g)
    ours = (ops.adjust_hue(x, shift) - x).flatten()
    ref = (torch.stack([TF.adjust_hue(img, shift) for img in x]) - x).flatten()
    assert F.cosine_similarity(ours, ref, dim=0) > 0.5
    assert F.cosine_similarity((ops.adjust_hue(x, -shift) - x).flatten(), ref, dim=0) < -0.3
    assert 0.7 < ours.norm() / ref.norm() < 1.5


def test_color_jitter_identity_and_mask(images) -> None:
    identity = torch.tensor([[1.0, 1.0, 1.0, 0.0]]).expand(B, 4)
    assert torch.equal(ops.color_jitter(images, identity, torch.ones(B, dtype=torch.bool)), images)
    jitter = torch.tensor([[1.3, 0.7, 1.2, 0.1]]).expand(B, 4)
    mask = torch.tensor([True, False, True, False, True, False])
    out = ops.color_jitter(images, jitter, mask)
    assert torch.equal(out[~mask], images[~mask])
    expected = ops.adjust_hue(
        ops.adjust_saturation(ops.adjust_contrast(ops.adjust_brightness(images[mask], 1.3), 0.7), 1.2),
        0.1,
    )
    torch.testing.assert_close(out[mask], expected, atol=0, rtol=0)
    assert out.min() >= 0 and out.max() <= 1


def test_color_jitter_gradcheck() -> None:
    g = torch.Generator().manual_seed(3)
    x = (0.35 + 0.3 * torch.rand(3, 3, 4, 4, generator=g)).double()
    jitter = torch.tensor(
        [[1.05, 0.95, 1.1, 0.03], [0.9, 1.1, 0.9, -0.05], [1.1, 1.05, 0.95, 0.08]],
        dtype=torch.float64,
        requires_grad=True,
    )
    mask = torch.tensor([True, False, True])
    assert torch.autograd.gradcheck(lambda j: ops.color_jitter(x, j, mask), (jitter,))
    (grad,) = torch.autograd.grad(ops.color_jitter(x, jitter, mask).square().sum(), jitter)
    assert torch.equal(grad[1], torch.zeros(4, dtype=torch.float64))
    assert (grad[[0, 2]].abs() > 0).all()


def test_gaussian_blur_gradcheck_sigma() -> None:
    x = torch.rand(2, 3, 6, 6, generator=torch.Generator().manual_seed(4)).double()
    sigma = torch.tensor([0.7, 1.3], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda s: ops.gaussian_blur(x, s, 3), (sigma,))


@pytest.mark.parametrize(("sigma", "kernel"), [(0.5, 3), (1.0, 5), (2.0, 9)])
def test_gaussian_blur_matches_torchvision(images, sigma: float, kernel: int) -> None:
    ours = ops.gaussian_blur(images, torch.full((B,), sigma), kernel)
    ref = TF.gaussian_blur(images, [kernel, kernel], [sigma, sigma])
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)


def test_gaussian_blur_per_image_sigma(images) -> None:
    sigma = torch.tensor([0.3, 0.6, 0.9, 1.2, 1.5, 1.8])
    out = ops.gaussian_blur(images, sigma, 5)
    for i in range(B):
        ref = TF.gaussian_blur(images[i], [5, 5], [float(sigma[i])] * 2)
        torch.testing.assert_close(out[i], ref, atol=1e-5, rtol=0)
    # Stronger blur removes more variation.
    std = out.std(dim=(1, 2, 3))
    assert (std[1:] < std[:-1]).all()


def test_flip_is_exact(images) -> None:
    mask = torch.tensor([True, False, False, True, True, False])
    out = ops.horizontal_flip(images, mask)
    assert torch.equal(out[mask], images[mask].flip(-1))
    assert torch.equal(out[~mask], images[~mask])


def test_full_box_crop_same_size_is_identity() -> None:
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    boxes = torch.tensor([[0.0, 0.0, 1.0, 1.0]]).expand(4, 4)
    assert torch.equal(ops.resized_crop(x, boxes, 32), x)


@pytest.mark.parametrize(("top", "left", "height", "width"), [(4, 6, 16, 20), (0, 0, 32, 8), (10, 3, 7, 29)])
def test_crop_matches_torchvision_resized_crop(top: int, left: int, height: int, width: int) -> None:
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(6))
    box = torch.tensor([[top / 32, left / 32, height / 32, width / 32]]).expand(2, 4)
    ours = ops.resized_crop(x, box, 32)
    ref = TF.resized_crop(x, top, left, height, width, [32, 32], antialias=False)
    # torchvision cuts the box out first and so clamps samples at the box edge; we sample the
    # source image itself, which differs only where a sample falls outside the box's outermost
    # pixel centres (a thin frame when upscaling). Everywhere else both are the same bilinear.
    ys = top + (torch.arange(32) + 0.5) * height / 32 - 0.5
    xs = left + (torch.arange(32) + 0.5) * width / 32 - 0.5
    inside_y = (ys >= top) & (ys <= top + height - 1)
    inside_x = (xs >= left) & (xs <= left + width - 1)
    inside = inside_y[:, None] & inside_x[None, :]
    assert inside.float().mean() > 0.8
    torch.testing.assert_close(ours[..., inside], ref[..., inside], atol=1e-5, rtol=0)
    # On the frame the two still agree roughly (neighbouring pixels of a noise image).
    assert (ours - ref).abs().mean() < 0.02


def test_downscaling_crop_averages_instead_of_aliasing() -> None:
    # A full 64px box to 32px samples every source pixel once: exactly a 2x2 average pool.
    x = torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(7))
    boxes = torch.tensor([[0.0, 0.0, 1.0, 1.0]]).expand(3, 4)
    torch.testing.assert_close(ops.resized_crop(x, boxes, 32), F.avg_pool2d(x, 2), atol=1e-6, rtol=0)


def test_crop_per_image_boxes_and_source_index() -> None:
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(8))
    boxes = torch.tensor([[0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 0.5, 0.5], [0.0, 0.5, 0.5, 0.5]])
    out = ops.resized_crop(x, boxes, 16, source_index=torch.tensor([0, 0, 1]))
    assert out.shape == (3, 3, 16, 16)
    torch.testing.assert_close(out[0], x[0, :, :16, :16], atol=1e-6, rtol=0)
    torch.testing.assert_close(out[1], x[0, :, 16:, 16:], atol=1e-6, rtol=0)
    torch.testing.assert_close(out[2], x[1, :, :16, 16:], atol=1e-6, rtol=0)


def test_ops_work_in_channels_last(images) -> None:
    cl = images.contiguous(memory_format=torch.channels_last)
    jitter = torch.tensor([[1.2, 0.8, 1.3, 0.2]]).expand(B, 4)
    torch.testing.assert_close(ops.color_jitter(cl, jitter), ops.color_jitter(images, jitter))
