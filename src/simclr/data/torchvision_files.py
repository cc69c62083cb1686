"""Reading a torchvision dataset's files, or the image-folder layout that stands in for them.

Every torchvision loader first looks for an image-folder layout, ``DIR/{train,test}/<class>/*`` (``test`` may
be ``val``), in ``data_dir`` and in ``data_dir/<name>`` (:func:`find_folder_layout`); only then does it use
torchvision's own files (:func:`open_torchvision`). The network is touched only when ``download=True``
(torchvision's download code); missing files otherwise raise :class:`UserError` naming ``--download`` and
``--data-dir``. Arrays read from torchvision's files become a store by :func:`store_from_arrays`, listed
files by :func:`decode_listing`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from simclr.data.folder_listing import has_split_layout
from simclr.data.imagefolder import load_split_folder
from simclr.data.parallel_decode import decode_files
from simclr.data.request import LoadRequest
from simclr.data.sampling import stratified_subset
from simclr.data.store import ImageStore
from simclr.errors import UserError

__all__ = [
    "decode_listing",
    "find_folder_layout",
    "load_folder_layout",
    "needed_data_dir",
    "open_torchvision",
    "resize_images",
    "store_from_arrays",
]

_RESIZE_CHUNK = 1024


def needed_data_dir(request: LoadRequest, name: str) -> Path:
    """``request.data_dir``, which a dataset read from torchvision's files cannot do without."""
    if request.data_dir is None:
        raise UserError(f"{name} needs a data folder; pass --data-dir DIR (with --download to fetch it)")
    return Path(request.data_dir).expanduser()


def _not_found(name: str, data_dir: Path) -> UserError:
    return UserError(
        f"{name} not found in {data_dir}; pass --download on a connected machine or point "
        "--data-dir at a folder with train/ and test/ class folders"
    )


def _download_failed(name: str, data_dir: Path, err: BaseException) -> UserError:
    return UserError(
        f"downloading {name} into {data_dir} failed ({type(err).__name__}: {err}); check the network "
        "connection or put the files there yourself"
    )


def find_folder_layout(data_dir: Path | None, name: str) -> Path | None:
    """``data_dir`` or ``data_dir/<name>`` when it has train/ and test/ (or val/) sub-folders."""
    if data_dir is None:
        return None
    data_dir = Path(data_dir).expanduser()
    for candidate in (data_dir, data_dir / name):
        if candidate.is_dir() and has_split_layout(candidate):
            return candidate
    return None


def open_torchvision(name: str, data_dir: Path, download: bool, factory: Callable[[], Any]) -> Any:
    """Build a torchvision dataset, turning its 'not found' and download errors into UserError."""
    if not download and not data_dir.is_dir():
        raise _not_found(name, data_dir)
    try:
        return factory()
    except RuntimeError as e:
        if download:
            raise _download_failed(name, data_dir, e) from e
        raise _not_found(name, data_dir) from e
    except OSError as e:  # URLError, HTTP errors, disk full, ...
        if download:
            raise _download_failed(name, data_dir, e) from e
        raise


def resize_images(images: torch.Tensor, image_size: int, chunk: int = _RESIZE_CHUNK) -> torch.Tensor:
    """Resize uint8 ``(N, 3, H, W)`` images: shorter side to ``image_size`` (bilinear, antialiased),
    then centre-crop a square. A no-op when they already are ``image_size`` square."""
    n, c, h, w = images.shape
    if h == image_size and w == image_size:
        return images
    scale = image_size / min(h, w)
    new_h = image_size if h <= w else max(image_size, round(h * scale))
    new_w = image_size if w <= h else max(image_size, round(w * scale))
    top = (new_h - image_size) // 2
    left = (new_w - image_size) // 2
    out = torch.empty((n, c, image_size, image_size), dtype=torch.uint8)
    for lo in range(0, n, chunk):
        x = images[lo : lo + chunk].float()
        x = F.interpolate(x, size=(new_h, new_w), mode="bilinear", antialias=True, align_corners=False)
        x = x[:, :, top : top + image_size, left : left + image_size]
        out[lo : lo + chunk] = x.round_().clamp_(0, 255).to(torch.uint8)
    return out


def store_from_arrays(
    images: torch.Tensor, labels: torch.Tensor, class_names: list[str], image_size: int, limit: int | None, seed: int
) -> ImageStore:
    """Subset (before resizing, to save work), resize and wrap in-memory arrays."""
    labels = torch.as_tensor(labels, dtype=torch.int64).reshape(-1)
    if limit is not None:
        keep = stratified_subset(labels, limit, seed)
        images, labels = images.index_select(0, keep), labels.index_select(0, keep)
    images = resize_images(images.contiguous(), image_size)
    return ImageStore(images=images.contiguous(), labels=labels, class_names=list(class_names))


def load_folder_layout(root: Path, request: LoadRequest, *, image_size: int | None, limit: int | None) -> ImageStore:
    """The requested split of an image-folder layout standing in for a torchvision dataset's files."""
    return load_split_folder(
        root, request.folder_split, image_size=image_size, workers=request.workers, limit=limit, seed=request.seed
    )


def decode_listing(
    name: str,
    where: Path,
    listing: tuple[list[Path], torch.Tensor, list[str]],
    request: LoadRequest,
    crop_bottom: int = 0,
) -> ImageStore:
    """Decode listed image files ``(paths, labels, class names)`` (a stratified ``request.limit`` first, so
    unused files are never read) into a store whose file names are relative to ``where``; undecodable files
    are skipped and recorded."""
    paths, labels, class_names = listing
    if request.limit is not None:
        keep = stratified_subset(labels, request.limit, request.seed)
        paths = [paths[i] for i in keep.tolist()]
        labels = labels.index_select(0, keep)
    names = [os.path.relpath(p, where) for p in paths]
    size = request.resolved_size()
    images, ok_idx, skipped = decode_files(
        paths, image_size=size, workers=request.workers, crop_bottom=crop_bottom, names=names, where=where
    )
    if ok_idx.numel() == 0:
        raise UserError(f"no readable {name} image in {where}; delete it and pass --download again")
    return ImageStore(
        images=images,
        labels=labels.index_select(0, ok_idx),
        class_names=class_names,
        file_names=[names[i] for i in ok_idx.tolist()],
        skipped=skipped,
    )
