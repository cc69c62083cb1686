"""Streaming packed datasets (:mod:`simclr.data.packed`) with litdata, for data bigger than memory.

litdata's :class:`~litdata.StreamingDataset` reads the chunks from local disk or object storage, shards
them across processes and machines (every sample seen once per epoch across all of them), shuffles, and
keeps its position in a state that Lightning saves in the checkpoint, so a resumed run continues mid-epoch.
The datasets here only add what happens to one sample in a loader worker: the image is decoded once and its
views cut from it at its stored resolution (:func:`~simclr.views.per_image.crop_views`), or, for features,
its centre view.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
from litdata import StreamingDataset
from PIL import Image
from torch import Tensor

from simclr.data.packed import INDEX_FILE, INFO_FILE, LABELS_FILE, PackedSplitInfo, read_pack_info
from simclr.data.store import ImageStore
from simclr.errors import UserError
from simclr.views.config import ViewConfig
from simclr.views.per_image import center_view, crop_views, view_generator_for_sample

log = logging.getLogger("simclr")

__all__ = [
    "PackedImagesDataset",
    "PackedSplit",
    "PackedViewsDataset",
    "decode_stored",
    "find_packed_split",
    "find_remote_split",
    "is_packed",
    "is_url",
    "packed_image_size",
]

_SPLIT_NAMES = {"train": ("train",), "test": ("test", "val", "valid", "validation")}


def is_url(location: str | Path) -> bool:
    """True for a location litdata reads remotely (``s3://``, ``gs://``, ``azure://``, ...)."""
    return "://" in str(location)


def _remote_sidecars(url: str) -> Path:
    """Local copies of a remote split's description files (litdata's index, the pack description, the
    labels), downloaded once with litdata's downloader for that storage into ``$SIMCLR_CACHE/remote``."""
    from litdata.streaming.downloader import get_downloader

    url = url.rstrip("/")
    cache = Path(os.environ.get("SIMCLR_CACHE") or Path.home() / ".cache" / "simclr")
    local = cache / "remote" / hashlib.sha1(url.encode()).hexdigest()[:12]
    local.mkdir(parents=True, exist_ok=True)
    downloader = get_downloader(url, str(local), [])
    for name in (INDEX_FILE, INFO_FILE, LABELS_FILE):
        if not (local / name).is_file():
            try:
                downloader.download_file(f"{url}/{name}", str(local / name))
            except Exception as exc:  # each storage client raises its own errors
                raise UserError(f"cannot read {url}/{name} ({type(exc).__name__}: {exc}); check the URL") from None
    return local


def find_remote_split(root: str, split: str) -> str | None:
    """``root/train`` or ``root/test`` (also ``val``) of a packed dataset at a URL, when it is there."""
    for name in _SPLIT_NAMES.get(split, (split,)):
        candidate = f"{root.rstrip('/')}/{name}"
        try:
            _remote_sidecars(candidate)
        except UserError:
            continue
        return candidate
    return None


def is_packed(root: Path) -> bool:
    """True for the output of ``simclr data pack`` (its ``train/`` split, or a split folder itself)."""
    return find_packed_split(Path(root), "train") is not None


def find_packed_split(root: Path, split: str) -> Path | None:
    """``root/train`` or ``root/test`` (also ``val``) when packed; ``root`` itself for ``train`` when it is
    one packed split; None when the split is absent."""
    root = Path(root).expanduser()
    for name in _SPLIT_NAMES.get(split, (split,)):
        if (root / name / INDEX_FILE).is_file():
            return root / name
    if split == "train" and (root / INDEX_FILE).is_file():
        return root
    return None


def packed_image_size(root: Path) -> int:
    """The default training size of a packed dataset: the standard size below its images' median shorter
    side, as for an image folder of mixed sizes (:func:`~simclr.data.imagefolder.default_image_size`)."""
    from simclr.data.imagefolder import default_image_size

    folder = find_packed_split(root, "train")
    if folder is None:
        raise UserError(f"{root} holds no packed dataset; create one with 'simclr data pack SRC {root}'")
    return default_image_size([read_pack_info(folder).median_shorter_side])


def decode_stored(data: bytes | memoryview) -> Image.Image:
    """A stored image (JPEG or PNG, RGB or L: what packing writes), decoded to RGB."""
    image = Image.open(io.BytesIO(data))
    image.load()
    return image if image.mode == "RGB" else image.convert("RGB")


def _sample_index(index: Any) -> int:
    return int(getattr(index, "index", index))


class PackedViewsDataset(StreamingDataset):
    """Training samples: ``{"views": (n_views, 3, size, size) uint8, "labels": int, "index": int}``.

    The crops of sample ``i`` in epoch ``e`` depend only on (``view_seed``, ``e``, ``i``), so a resumed or
    re-sharded run cuts the same views.
    """

    def __init__(
        self,
        path: Path | str,
        n_views: int,
        config: ViewConfig,
        view_seed: int,
        *,
        shuffle: bool = True,
        subsample: float = 1.0,
    ):
        super().__init__(str(path), shuffle=shuffle, drop_last=True, seed=view_seed, subsample=subsample)
        config.validate()
        self.n_views = n_views
        self.view_config = config
        self.view_seed = view_seed

    def __getitem__(self, index: Any) -> dict[str, Any]:
        item = super().__getitem__(index)
        sample = _sample_index(index)
        generator = view_generator_for_sample(self.view_seed, self.current_epoch, sample)
        views = crop_views(decode_stored(item["image"]), self.n_views, self.view_config, generator)
        return {"views": views, "labels": int(item["label"]), "index": sample}


class PackedImagesDataset(StreamingDataset):
    """Evaluation samples, in stored order: ``{"images": (3, size, size) uint8, "labels": int, "index": int}``."""

    def __init__(self, path: Path | str, size: int):
        super().__init__(str(path), shuffle=False, drop_last=False)
        self.size = size

    def __getitem__(self, index: Any) -> dict[str, Any]:
        item = super().__getitem__(index)
        return {
            "images": center_view(decode_stored(item["image"]), self.size),
            "labels": int(item["label"]),
            "index": _sample_index(index),
        }


@dataclass
class PackedSplit:
    """One packed split: where it is (a folder, or a URL litdata reads such as ``s3://bucket/data/train``),
    its description and its labels, read without touching the images."""

    path: Path | str
    info: PackedSplitInfo = field(init=False)
    sidecars: Path = field(init=False)  # the folder holding its description files (a local copy for a URL)

    def __post_init__(self) -> None:
        self.sidecars = _remote_sidecars(str(self.path)) if is_url(self.path) else Path(self.path)
        self.info = read_pack_info(self.sidecars)

    @cached_property
    def labels(self) -> Tensor:
        return torch.from_numpy(np.load(self.sidecars / LABELS_FILE))

    def __len__(self) -> int:
        return self.info.images

    @property
    def class_names(self) -> list[str]:
        return list(self.info.class_names)

    @property
    def has_labels(self) -> bool:
        return bool((self.labels >= 0).any())

    def views(self, n_views: int, config: ViewConfig, seed: int, subsample: float = 1.0) -> PackedViewsDataset:
        """Training samples, shuffled by ``seed`` every epoch; ``subsample`` < 1 keeps that random part."""
        return PackedViewsDataset(self.path, n_views, config, seed, subsample=subsample)

    def images(self, size: int) -> PackedImagesDataset:
        return PackedImagesDataset(self.path, size)

    def load_first(self, count: int, size: int, workers: int = 0) -> ImageStore:
        """The centre views of the first ``count`` samples, in memory. The samples were packed in a seeded
        random order, so they are a random subset (what the kNN monitor holds)."""
        from torch.utils.data import DataLoader, Subset

        count = min(count, len(self))
        loader: DataLoader[dict[str, Any]] = DataLoader(
            Subset(self.images(size), range(count)), batch_size=64, num_workers=workers
        )
        images, labels = [], []
        for batch in loader:
            images.append(batch["images"])
            labels.append(batch["labels"])
        if not images:
            raise UserError(f"{self.path} holds no images")
        return ImageStore(torch.cat(images), torch.cat(labels), self.class_names)
