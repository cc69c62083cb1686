"""A map-style torch ``Dataset`` of the user's, read once into an :class:`ImageStore`, so that
``simclr.pretrain(config, dataset=...)`` trains on it by the same in-memory path as a named dataset.

An item is an image or an ``(image, label)`` pair. An image is a PIL image of any mode, or a tensor
``(C, H, W)`` (or ``(H, W)``) with 1 (gray), 3 (RGB) or 4 (RGBA) channels, uint8 or float in [0, 1]. Every
image becomes 8-bit RGB by the rules image folders follow (:func:`simclr.views.rgb.to_rgb_array`: gray is
repeated, alpha is composited on black) and a square of the run's image size by :func:`resize_square`
(``crop``: shorter side resized, centre cut; ``squash``), so a Dataset and a folder of the same pictures give
the same store. Labels are class indices (-1 or None: unlabelled); class names come from the dataset's
``classes`` (as torchvision's datasets name them), else they are the indices.
"""

from __future__ import annotations

import logging
import statistics
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision.transforms.functional import to_pil_image

from simclr.data.decode import resize_square
from simclr.data.image_sizes import default_image_size
from simclr.data.sampling import stratified_subset
from simclr.data.store import ImageStore
from simclr.errors import UserError
from simclr.settings import format_size
from simclr.views.rgb import to_rgb_array

__all__ = ["common_image_size", "dataset_class_name", "declared_classes", "read_dataset", "rgb_item", "square_item"]

log = logging.getLogger("simclr")

ITEM_HELP = "an item is an image (a PIL image, or a uint8 or [0, 1] float tensor (C, H, W)) or an (image, label) pair"


def dataset_class_name(dataset: object) -> str:
    """``module.Class`` of ``dataset``: what a run's config records about where its images came from."""
    cls = type(dataset)
    return f"{cls.__module__}.{cls.__qualname__}"


def read_dataset(
    dataset: Dataset[Any],
    image_size: int | None = None,
    resize: str = "crop",
    *,
    limit: int | None = None,
    seed: int = 0,
) -> ImageStore:
    """Every item of ``dataset`` as one uint8 ``(N, 3, S, S)`` store with its labels.

    ``image_size`` None keeps the images' size when they are all the same square, else picks the standard
    size below their typical shorter side (:func:`~simclr.data.image_sizes.default_image_size`, logged), as
    for an image folder; the images are then held at their own size until all are read. ``limit`` keeps a
    stratified subset of that many images, chosen with ``seed``. An item of another kind, or an image of
    another shape or range, is a one-line UserError naming the item.
    """
    name = dataset_class_name(dataset)
    try:
        count = len(dataset)  # type: ignore[arg-type]
    except TypeError:
        raise UserError(f"{name} has no len(); pass a map-style Dataset (dataset[i] for i < len(dataset))") from None
    if count == 0:
        raise UserError(f"{name} is empty; pass a Dataset with images")
    arrays: list[np.ndarray] = []
    labels: list[int] = []
    for index in range(count):
        array, label = rgb_item(dataset[index], f"{name}[{index}]")
        arrays.append(array if image_size is None else _square(array, image_size, resize))
        labels.append(label)
    size = image_size or common_image_size(arrays, name)
    images = torch.empty((count, 3, size, size), dtype=torch.uint8)
    for index, array in enumerate(arrays):
        images.numpy()[index] = _square(array, size, resize).transpose(2, 0, 1)
    store = ImageStore(images, torch.tensor(labels), _class_names(dataset, labels))
    log.info("%s: %d images read into memory at %d px (%s)", name, count, size, format_size(store.nbytes))
    if limit is not None and limit < count:
        store = store.subset(stratified_subset(store.labels, limit, seed))
    return store


def rgb_item(item: object, where: str) -> tuple[np.ndarray, int]:
    """One item of a Dataset as an ``(H, W, 3)`` uint8 array at its own size and its label (-1: unlabelled); an
    item of another kind is a one-line UserError naming ``where`` it came from."""
    image, label = _image_and_label(item, where)
    return _rgb_array(image, where), label


def square_item(item: object, where: str, size: int, resize: str = "crop") -> tuple[np.ndarray, int]:
    """One item as :func:`read_dataset` holds it, an ``(S, S, 3)`` uint8 square of ``size``, and its label:
    what the loader workers of a streamed Dataset make of each item (:mod:`simclr.data.python_stream`)."""
    array, label = rgb_item(item, where)
    return _square(array, size, resize), label


def _image_and_label(item: object, where: str) -> tuple[object, int]:
    if not isinstance(item, tuple | list):
        return item, -1
    if len(item) == 1:  # TensorDataset(images) gives (image,)
        return item[0], -1
    if len(item) != 2:
        raise UserError(f"{where} has {len(item)} parts; {ITEM_HELP}")
    image, label = item
    if label is None:
        return image, -1
    if isinstance(label, torch.Tensor) and label.numel() == 1 and not label.is_floating_point():
        label = label.item()
    if isinstance(label, bool) or not isinstance(label, int | np.integer) or label < -1:
        raise UserError(f"{where}: label {str(label)[:40]!r} is not a class index (0, 1, ...; -1 or None: unlabelled)")
    return image, int(label)


def _rgb_array(image: object, where: str) -> np.ndarray:
    """``(H, W, 3)`` uint8 of a PIL image or an image tensor."""
    if isinstance(image, torch.Tensor):
        image = _tensor_to_pil(image, where)
    if not isinstance(image, Image.Image):
        raise UserError(f"{where} is a {type(image).__module__}.{type(image).__qualname__}; {ITEM_HELP}")
    return to_rgb_array(image)


def _tensor_to_pil(image: torch.Tensor, where: str) -> Image.Image:
    """A uint8 or [0, 1] float tensor ``(C, H, W)`` or ``(H, W)`` as the PIL image of its mode (L, RGB, RGBA), so
    tensors follow the PIL rules (alpha composited on black)."""
    pixels = image.detach().cpu()
    if pixels.dim() == 2:
        pixels = pixels.unsqueeze(0)
    if pixels.dim() != 3 or pixels.shape[0] not in (1, 3, 4):
        raise UserError(
            f"{where} is a tensor of shape {tuple(image.shape)}; an image tensor is (C, H, W) with 1 (gray), "
            "3 (RGB) or 4 (RGBA) channels"
        )
    if pixels.is_floating_point():
        low, high = float(pixels.min()), float(pixels.max())
        if not 0.0 <= low <= high <= 1.0:  # NaN fails too
            raise UserError(
                f"{where} is a float image with values in [{low:.3g}, {high:.3g}]; pass pixels in [0, 1] (or uint8), "
                "not normalised ones: simclr normalises the views itself"
            )
        pixels = (pixels * 255).round().to(torch.uint8)
    elif pixels.dtype != torch.uint8:
        raise UserError(f"{where} is a {pixels.dtype} tensor; pass uint8 pixels or floats in [0, 1]")
    return to_pil_image(pixels)


def _square(array: np.ndarray, size: int, resize: str) -> np.ndarray:
    if array.shape[0] == array.shape[1] == size:
        return array
    return np.asarray(resize_square(Image.fromarray(array), size, resize), dtype=np.uint8)


def common_image_size(arrays: list[np.ndarray], name: str) -> int:
    """The images' own side when they are all the same square, else the standard size for their shorter sides."""
    shapes = {array.shape[:2] for array in arrays}
    if len(shapes) == 1 and arrays[0].shape[0] == arrays[0].shape[1]:
        return int(arrays[0].shape[0])
    shorter = [min(array.shape[:2]) for array in arrays]
    size = default_image_size(shorter)
    log.info(
        "%s: images of other sizes than one square (shorter side median %d px); using image_size %d (pass "
        "image_size in the config to choose)",
        name,
        statistics.median_low(shorter),
        size,
    )
    return size


def declared_classes(dataset: object) -> list[str] | None:
    """The class names ``dataset`` declares in ``classes`` (as torchvision's datasets name theirs), or None."""
    named = getattr(dataset, "classes", None)
    if isinstance(named, list | tuple) and named and all(isinstance(n, str) for n in named):
        return list(named)
    return None


def _class_names(dataset: object, labels: list[int]) -> list[str]:
    top = max(labels)
    if top < 0:
        return []
    named = declared_classes(dataset)
    if named is not None and len(named) > top:
        return named
    return [str(index) for index in range(top + 1)]
