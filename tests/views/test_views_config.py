"""ViewConfig: resolved SimCLR strengths and validation errors."""

import math

import pytest

from simclr.errors import UserError
from simclr.views.config import ViewConfig


def test_defaults_follow_simclr_cifar_strength() -> None:
    cfg = ViewConfig(size=32)
    cfg.validate()
    assert cfg.brightness_factor_range == pytest.approx((0.6, 1.4))
    assert cfg.contrast_factor_range == pytest.approx((0.6, 1.4))
    assert cfg.saturation_factor_range == pytest.approx((0.6, 1.4))
    assert cfg.hue_shift_range == pytest.approx((-0.1, 0.1))


def test_strength_and_explicit_overrides() -> None:
    cfg = ViewConfig(size=32, jitter_strength=1.5, saturation=0.3, hue=0.05)
    assert cfg.brightness_factor_range == pytest.approx((0.0, 2.2))  # lower end clipped at 0
    assert cfg.contrast_factor_range == pytest.approx((0.0, 2.2))
    assert cfg.saturation_factor_range == pytest.approx((0.7, 1.3))
    assert cfg.hue_shift_range == pytest.approx((-0.05, 0.05))


@pytest.mark.parametrize(
    ("size", "kernel", "expected"),
    [(32, None, 3), (10, None, 3), (96, None, 9), (224, None, 23), (100, None, 11), (32, 5, 5)],
)
def test_blur_kernel_size(size: int, kernel: int | None, expected: int) -> None:
    cfg = ViewConfig(size=size, blur_kernel=kernel)
    assert cfg.blur_kernel_size == expected
    assert cfg.blur_kernel_size % 2 == 1


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"size": 0}, "size"),
        ({"size": 1.5}, "size"),
        ({"crop_scale": (0.0, 1.0)}, "crop_scale"),
        ({"crop_scale": (0.9, 0.5)}, "crop_scale"),
        ({"crop_scale": (0.5, 1.1)}, "crop_scale"),
        ({"crop_scale": (0.5,)}, "crop_scale"),
        ({"crop_ratio": (0.0, 1.0)}, "crop_ratio"),
        ({"crop_ratio": (2.0, 1.0)}, "crop_ratio"),
        ({"flip_p": -0.1}, "flip_p"),
        ({"jitter_p": math.nan}, "jitter_p"),
        ({"grayscale_p": 1.5}, "grayscale_p"),
        ({"blur_p": 2.0}, "blur_p"),
        ({"jitter_strength": -1.0}, "jitter_strength"),
        ({"jitter_strength": 3.0}, "hue"),  # 0.2 * 3 = 0.6 > 0.5
        ({"brightness": -0.1}, "brightness"),
        ({"contrast": math.inf}, "contrast"),
        ({"hue": 0.6}, "hue"),
        ({"blur_kernel": 4}, "blur_kernel"),
        ({"blur_kernel": 0}, "blur_kernel"),
        ({"size": 4, "blur_p": 0.5, "blur_kernel": 9}, "blur_kernel"),
        ({"blur_sigma": (0.0, 1.0)}, "blur_sigma"),
        ({"blur_sigma": (2.0, 1.0)}, "blur_sigma"),
        ({"mean": (0.5, 0.5)}, "mean"),
        ({"std": (0.5, 0.0, 0.5)}, "std"),
    ],
)
def test_invalid_config_raises_user_error_naming_field(changes: dict, field: str) -> None:
    cfg = ViewConfig(**{"size": 32, **changes})
    with pytest.raises(UserError) as info:
        cfg.validate()
    message = str(info.value)
    assert field in message
    assert "\n" not in message


def test_error_message_names_range_and_value() -> None:
    with pytest.raises(UserError, match=r"^grayscale_p must be in \[0, 1\], got 1\.5$"):
        ViewConfig(size=32, grayscale_p=1.5).validate()


def test_config_is_frozen() -> None:
    cfg = ViewConfig(size=32)
    with pytest.raises(AttributeError):
        cfg.size = 64  # type: ignore[misc]
