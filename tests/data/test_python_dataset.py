"""A user's Dataset read into an ImageStore: the same pixels an image folder of the same pictures gives, every
image kind (PIL modes, uint8 / float tensors, 1 / 3 / 4 channels) made RGB, labels kept, bad items refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import Dataset, TensorDataset

from simclr.data.imagefolder import load_image_folder
from simclr.data.python_dataset import read_dataset
from simclr.errors import UserError


class Items(Dataset):  # type: ignore[type-arg]
    """A list as a map-style Dataset, with torchvision's ``classes`` when given."""

    def __init__(self, items: list[object], classes: list[str] | None = None) -> None:
        self.items = items
        if classes is not None:
            self.classes = classes

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> object:
        return self.items[index]


def pictures() -> list[Image.Image]:
    """Photos of other sizes and modes than the run's: RGB 24x20, gray 16x16, RGBA 20x30 with transparency."""
    rng = np.random.default_rng(0)
    rgba = rng.integers(0, 256, (30, 20, 4), dtype=np.uint8)
    rgba[:10, :, 3] = 0  # a fully transparent band: black, as in image folders
    return [
        Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)),
        Image.fromarray(rng.integers(0, 256, (16, 16), dtype=np.uint8), mode="L"),
        Image.fromarray(rgba, mode="RGBA"),
    ]


@pytest.mark.parametrize("resize", ["crop", "squash"])
def test_pil_images_give_the_pixels_an_image_folder_gives(tmp_path: Path, resize: str) -> None:
    for index, image in enumerate(pictures()):
        (tmp_path / "c").mkdir(exist_ok=True)
        image.save(tmp_path / "c" / f"{index}.png")
    folder = load_image_folder(tmp_path, image_size=16, resize=resize)
    store = read_dataset(Items(pictures()), image_size=16, resize=resize)
    assert store.images.shape == (3, 3, 16, 16) and store.images.dtype == torch.uint8
    torch.testing.assert_close(store.images, folder.images, rtol=0, atol=0)
    assert not store.has_labels and store.class_names == []
    assert int(store.images[2, :, :3].max()) == 0  # the transparent band (rows 0-9 of 30, 4 of them cut)


def test_tensors_of_every_kind_become_rgb_uint8() -> None:
    rgb = torch.randint(0, 256, (3, 8, 8), dtype=torch.uint8)
    gray = torch.randint(0, 256, (1, 8, 8), dtype=torch.uint8)
    rgba = torch.cat([rgb, torch.full((1, 8, 8), 255, dtype=torch.uint8)])  # opaque: the RGB pixels
    items = [rgb, rgb.float() / 255, gray, gray[0], rgba]
    store = read_dataset(Items(items))
    assert store.images.shape == (5, 3, 8, 8)  # one square size: kept
    for index in (0, 1, 4):
        torch.testing.assert_close(store.images[index], rgb, rtol=0, atol=0)
    for index in (2, 3):
        torch.testing.assert_close(store.images[index], gray.expand(3, 8, 8), rtol=0, atol=0)


def test_mixed_sizes_get_the_standard_size_of_image_folders() -> None:
    store = read_dataset(Items([torch.zeros(3, 40, 40, dtype=torch.uint8), torch.zeros(3, 70, 50, dtype=torch.uint8)]))
    assert store.image_size == 32  # the standard size below the median shorter side (40)


def test_labels_class_names_and_limit() -> None:
    images = torch.randint(0, 256, (12, 3, 8, 8), dtype=torch.uint8)
    labels = torch.arange(12) % 3
    store = read_dataset(TensorDataset(images, labels))
    assert store.labels.tolist() == labels.tolist() and store.class_names == ["0", "1", "2"]
    named = read_dataset(Items([(images[0], 1), (images[1], None), (images[2], np.int64(0))], ["cat", "dog"]))
    assert named.labels.tolist() == [1, -1, 0] and named.class_names == ["cat", "dog"]
    limited = read_dataset(TensorDataset(images, labels), limit=6, seed=0)
    assert len(limited) == 6 and sorted(limited.labels.tolist()) == [0, 0, 1, 1, 2, 2]
    assert not read_dataset(TensorDataset(images)).has_labels  # (image,) items: unlabelled


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("photo.png", r"Items\[0\] is a builtins.str; an item is an image"),
        (np.zeros((8, 8, 3), dtype=np.uint8), r"is a numpy.ndarray; an item is an image"),
        (torch.zeros(5, 8, 8, dtype=torch.uint8), r"shape \(5, 8, 8\); an image tensor is \(C, H, W\) with 1"),
        (torch.zeros(3, 8, 8) - 2.1, r"values in \[-2.1, -2.1\]; pass pixels in \[0, 1\]"),
        (torch.zeros(3, 8, 8, dtype=torch.int64), r"torch.int64 tensor; pass uint8 pixels"),
        ((torch.zeros(3, 8, 8), 0, "extra"), r"has 3 parts"),
        ((torch.zeros(3, 8, 8), "cat"), r"label 'cat' is not a class index"),
        ((torch.zeros(3, 8, 8), 0.5), r"label '0.5' is not a class index"),
    ],
)
def test_bad_items_are_one_line_errors(item: object, message: str) -> None:
    with pytest.raises(UserError, match=message) as error:
        read_dataset(Items([item]))
    assert "\n" not in str(error.value)


def test_a_dataset_without_length_or_images_is_refused() -> None:
    class Stream(torch.utils.data.IterableDataset):  # type: ignore[type-arg]
        def __iter__(self):  # type: ignore[no-untyped-def]
            yield torch.zeros(3, 8, 8)

    with pytest.raises(UserError, match="has no len\\(\\); pass a map-style Dataset"):
        read_dataset(Stream())
    with pytest.raises(UserError, match="is empty"):
        read_dataset(Items([]))
