"""``--resize squash|crop`` for image folders, on generated non-square images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from simclr.config import build_config
from simclr.data.catalog import load_dataset
from simclr.data.decode import load_image, resize_square
from simclr.errors import UserError
from simclr.training.training_data import load_training_data


def _bands(width: int = 60, height: int = 20) -> np.ndarray:
    """Red, green and blue vertical thirds: a centre crop of the wide image sees only green."""
    pixels = np.zeros((height, width, 3), dtype=np.uint8)
    third = width // 3
    for channel in range(3):
        pixels[:, channel * third : (channel + 1) * third, channel] = 255
    return pixels


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    for cls, (w, h) in (("wide", (60, 20)), ("tall", (20, 60))):
        (tmp_path / cls).mkdir()
        pixels = _bands(w, h) if cls == "wide" else _bands(60, 20).transpose(1, 0, 2)
        Image.fromarray(pixels).save(tmp_path / cls / "0.png")
    return tmp_path


def test_crop_keeps_the_centre_squash_keeps_everything(folder: Path) -> None:
    crop = load_image(folder / "wide" / "0.png", 16)
    squash = load_image(folder / "wide" / "0.png", 16, resize="squash")
    assert crop.shape == squash.shape == (16, 16, 3)
    inner = crop[:, 2:-2]  # the band's edges blend a little with its neighbours (antialiasing)
    assert inner[:, :, 1].min() == 255 and inner[:, :, 0].max() == 0 and inner[:, :, 2].max() == 0  # green only
    assert squash[:, :4, 0].min() > 200 and squash[:, -4:, 2].min() > 200  # red left, blue right kept
    expected = np.asarray(Image.fromarray(_bands()).resize((16, 16), Image.Resampling.BILINEAR))
    assert np.array_equal(squash, expected)
    assert np.array_equal(np.asarray(resize_square(Image.fromarray(_bands()), 16, "crop")), crop)
    with pytest.raises(ValueError, match="resize mode"):
        resize_square(Image.fromarray(_bands()), 16, "stretch")


def test_image_folder_and_pretraining_honour_resize(folder: Path) -> None:
    squashed = load_dataset("imagefolder", "train", folder, image_size=16, resize="squash")
    cropped = load_dataset("imagefolder", "train", folder, image_size=16)
    tall = squashed.class_names.index("tall")
    assert squashed.images.shape == cropped.images.shape == (2, 3, 16, 16)
    top_red, bottom_blue = squashed.images[tall, 0, :4], squashed.images[tall, 2, -4:]
    assert top_red.min() > 200 and bottom_blue.min() > 200
    middle = cropped.images[tall, :, 2:-2]
    assert middle[1].min() == 255 and middle[0].max() == 0

    config = build_config({}, dict(dataset="imagefolder", data_dir=str(folder), image_size=16, resize="squash"))
    train = load_training_data(config).train
    assert (train.images == squashed.images).all()


def test_resize_squash_is_for_image_folders() -> None:
    with pytest.raises(UserError, match="--resize squash applies to image folders"):
        build_config({}, dict(dataset="cifar10", resize="squash")).validate()
