"""Streaming packed datasets (:mod:`simclr.data.packed`) with litdata, for data bigger than memory.

litdata's :class:`~litdata.StreamingDataset` reads the chunks from local disk or object storage, shards
them across processes and machines (every sample seen once per epoch across all of them), shuffles, and
keeps its position in a state that Lightning saves in the checkpoint, so a resumed run continues mid-epoch.
The datasets here only add what happens to one sample in a loader worker: the image is decoded once and its
views cut from it at its stored resolution (:func:`~simclr.views.per_image.crop_views`), or, for features,
its centre view.

A split is checked when it is opened (:class:`PackedSplit`): its description, its index, and for a local split
the size of every chunk file (:func:`~simclr.data.pack_format.check_chunk_files`; a split in object storage is
not: its chunks are fetched as they are read, and litdata checks what it downloads). A sample whose bytes are
damaged though its chunk has the right size is not skipped: reading it stops the run with a one-line
:class:`DamagedSplit` naming the split and the sample, since skipping would change what an epoch holds.
"""

from __future__ import annotations

import io
import logging
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
from litdata import StreamingDataset
from PIL import Image
from torch import Tensor
from torch.utils.data import DataLoader, Subset
from torchvision.io import ImageReadMode, decode_jpeg

from simclr.data.image_sizes import default_image_size
from simclr.data.object_storage import fetch_description, follow_moved_chunk_cache, is_url, stream_options
from simclr.data.pack_format import (
    LABELS_FILE,
    PackedSplitInfo,
    check_chunk_files,
    find_packed_split,
    read_pack_info,
    wait_for_packer,
)
from simclr.data.request import LoadRequest
from simclr.data.store import ImageStore
from simclr.data.worker_batches import batches_from_workers
from simclr.errors import UserError
from simclr.hardware import worker_processes
from simclr.stop_signals import ignore_stop_signals
from simclr.views.config import ViewConfig
from simclr.views.params import sample_crop_boxes
from simclr.views.per_image import center_view, crop_views, view_generator_for_sample

log = logging.getLogger("simclr")

IN_MEMORY_PACKED_BYTES = 8 * 2**30  # per split: what a command that holds its data decodes of a packed split

__all__ = [
    "DamagedSplit",
    "PackedEncodedDataset",
    "PackedCenterViewsDataset",
    "PackedSplit",
    "PackedImages",
    "SplitImages",
    "PackedViewsDataset",
    "collate_encoded",
    "decode_on_device",
    "decode_stored",
    "load_packed_in_memory",
    "packed_image_size",
]


def packed_image_size(root: Path) -> int:
    """The default training size of a packed dataset: the standard size below its images' median shorter
    side, as for an image folder of mixed sizes (:func:`~simclr.data.image_sizes.default_image_size`)."""
    folder = find_packed_split(root, "train")
    if folder is None:
        raise UserError(f"{root} holds no packed dataset; create one with 'simclr data pack SRC {root}'")
    return default_image_size([read_pack_info(folder).median_shorter_side])


def decode_stored(data: bytes | memoryview) -> Image.Image:
    """A stored image (JPEG or PNG, RGB or L: what packing writes), decoded to RGB."""
    image = Image.open(io.BytesIO(data))
    image.load()
    return image if image.mode == "RGB" else image.convert("RGB")


_JPEG_MAGIC = b"\xff\xd8"


def decode_on_device(encoded: list[Tensor], device: torch.device) -> list[Tensor]:
    """Stored images (``--decode device``) as ``(3, H, W)`` uint8 tensors on ``device``: the JPEGs in one
    batched call of torchvision's decoder (nvJPEG on CUDA), the rest (PNG) with Pillow as
    :func:`decode_stored` does, then moved there."""
    is_jpeg = [bytes(t[:2].tolist()) == _JPEG_MAGIC for t in encoded]
    jpegs = [t for t, jpeg in zip(encoded, is_jpeg, strict=True) if jpeg]
    decoded = iter(decode_jpeg(jpegs, mode=ImageReadMode.RGB, device=device) if jpegs else [])
    images = []
    for t, jpeg in zip(encoded, is_jpeg, strict=True):
        if jpeg:
            images.append(next(decoded))
        else:
            array = np.asarray(decode_stored(t.numpy().tobytes()), dtype=np.uint8)
            images.append(torch.from_numpy(array.copy()).permute(2, 0, 1).to(device))
    return images


def collate_encoded(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """A batch of :class:`PackedEncodedDataset` samples: the encoded images stay a list (their lengths differ)."""
    return {
        "encoded": [s["encoded"] for s in samples],
        "boxes": torch.stack([s["boxes"] for s in samples]),
        "labels": torch.tensor([s["labels"] for s in samples]),
        "index": torch.tensor([s["index"] for s in samples]),
    }


def _sample_index(index: Any) -> int:
    return int(getattr(index, "index", index))


class DamagedSplit(UserError):
    """A sample of a packed split that cannot be read or decoded: its chunk's bytes are damaged.

    Raised in a loader worker, it reaches the main process as torch's DataLoader raises a worker's exception
    again: the same class, made with the worker's whole traceback as its message. The one line is taken back
    out of it, so the command line still prints one line."""

    def __init__(self, message: str) -> None:
        marker = f"{DamagedSplit.__name__}: "
        if "\nOriginal Traceback" in message and marker in message:
            message = message.rsplit(marker, 1)[1].strip()
        super().__init__(message)


# what reading a sample from a damaged chunk raises: litdata's reader (struct, a chunk it waits for, a short read)
# and Pillow's decoders (OSError, and SyntaxError or ValueError from some image plugins)
_DAMAGED = (OSError, ValueError, SyntaxError, EOFError, struct.error, IndexError)


@contextmanager
def _damage_is_one_line(dataset: StreamingDataset, index: Any) -> Iterator[None]:
    """Reading sample ``index`` of ``dataset`` inside the block: damage is a one-line :class:`DamagedSplit`."""
    try:
        yield
    except _DAMAGED as exc:
        reason = " ".join(str(exc).split())[:160] or type(exc).__name__
        raise DamagedSplit(
            f"packed split {dataset.input_dir.path or dataset.input_dir.url}: sample {_sample_index(index)} cannot "
            f"be read ({reason}): its chunk is damaged; pack the split again with 'simclr data pack' (or copy it "
            "again whole)"
        ) from None


def _read_sample(dataset: StreamingDataset, index: Any) -> tuple[dict[str, Any], Image.Image]:
    """Sample ``index`` of ``dataset`` and its decoded image."""
    with _damage_is_one_line(dataset, index):
        item = StreamingDataset.__getitem__(dataset, index)
        return item, decode_stored(item["image"])


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
        super().__init__(
            str(path), shuffle=shuffle, drop_last=True, seed=view_seed, subsample=subsample, **stream_options(path)
        )
        config.validate()
        self.n_views = n_views
        self.view_config = config
        self.view_seed = view_seed

    def __getitem__(self, index: Any) -> dict[str, Any]:
        item, image = _read_sample(self, index)
        sample = _sample_index(index)
        generator = view_generator_for_sample(self.view_seed, self.current_epoch, sample)
        views = crop_views(image, self.n_views, self.view_config, generator)
        return {"views": views, "labels": int(item["label"]), "index": sample}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """The stream's position saved in a checkpoint, taken up where the machine caches the chunks (a resumed
        run may cache them elsewhere: :func:`~simclr.data.object_storage.follow_moved_chunk_cache`)."""
        super().load_state_dict(follow_moved_chunk_cache(state_dict, self.input_dir.path, self.cache_dir.path))


class PackedEncodedDataset(PackedViewsDataset):
    """Training samples for decoding on the device (``--decode device``): the stored bytes and the crop boxes
    of the views, ``{"encoded": (bytes,) uint8, "boxes": (n_views, 4), "labels": int, "index": int}``. The
    boxes are those :class:`PackedViewsDataset` cuts for the same (seed, epoch, sample); the loader reads only
    the image's header to draw them."""

    def __getitem__(self, index: Any) -> dict[str, Any]:
        with _damage_is_one_line(self, index):
            item = StreamingDataset.__getitem__(self, index)
            data = bytes(item["image"])
            with Image.open(io.BytesIO(data)) as header:
                width, height = header.size
        sample = _sample_index(index)
        generator = view_generator_for_sample(self.view_seed, self.current_epoch, sample)
        boxes = sample_crop_boxes(self.n_views, (height, width), self.view_config, generator)
        encoded = torch.frombuffer(bytearray(data), dtype=torch.uint8)
        return {"encoded": encoded, "boxes": boxes, "labels": int(item["label"]), "index": sample}


class PackedCenterViewsDataset(StreamingDataset):
    """Evaluation samples, in stored order: ``{"images": (3, size, size) uint8, "labels": int, "index": int}``."""

    def __init__(self, path: Path | str, size: int):
        super().__init__(str(path), shuffle=False, drop_last=False, **stream_options(path))
        # Read by index, litdata fetches one sample's byte range from object storage, and misreads the chunks it
        # writes (its ranged reader expects an offset table they no longer fill); whole chunks, downloaded into
        # the chunk cache, read right, and a split read in order needs them all anyway.
        self._on_demand_bytes = False
        self.size = size

    def __getitem__(self, index: Any) -> dict[str, Any]:
        item, image = _read_sample(self, index)
        return {
            "images": center_view(image, self.size),
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
        self.sidecars = fetch_description(str(self.path)) if is_url(self.path) else Path(self.path)
        self.info = read_pack_info(self.sidecars)
        if not is_url(self.path):  # in object storage, the chunks are fetched (and checked by litdata) when read
            check_chunk_files(Path(self.path))

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

    def encoded(self, n_views: int, config: ViewConfig, seed: int, subsample: float = 1.0) -> PackedEncodedDataset:
        """Training samples as :meth:`views` draws them, undecoded, for decoding on the device."""
        return PackedEncodedDataset(self.path, n_views, config, seed, subsample=subsample)

    def center_views(self, size: int) -> PackedCenterViewsDataset:
        """Evaluation samples: every image's centre view at ``size``, in stored order."""
        return PackedCenterViewsDataset(self.path, size)

    def load_first(self, count: int, size: int, workers: int = 0) -> ImageStore:
        """The centre views of the first ``count`` samples, in memory. The samples were packed in a seeded
        random order, so they are a random subset (what the kNN monitor holds)."""
        return self.images_at(size, workers).subset(torch.arange(min(count, len(self)))).load()

    def images_at(self, size: int, workers: int = 0) -> PackedImages:
        """The whole split as evaluation reads it: centre views at ``size``, decoded when read."""
        return PackedImages(self, size, torch.arange(len(self)), workers)


@dataclass
class PackedImages:
    """The images of a packed split at one size, read as evaluation reads a split: the labels and class names
    an in-memory :class:`~simclr.data.store.ImageStore` has, subsets, and the images as batches of centre
    views decoded in loader workers when read, so a split bigger than memory is never held (:meth:`load`
    decodes it into an ImageStore)."""

    split: PackedSplit
    size: int
    indices: Tensor  # (N,) which samples of the split, in this order
    workers: int = 0
    factors: None = None  # packed data has class labels, never regression targets
    file_names: None = None
    skipped: list[tuple[str, str]] = field(default_factory=list)  # packing already left the broken files out

    @property
    def labels(self) -> Tensor:
        return self.split.labels.index_select(0, self.indices)

    @property
    def class_names(self) -> list[str]:
        return self.split.class_names

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def has_labels(self) -> bool:
        return bool((self.labels >= 0).any())

    @property
    def image_size(self) -> int:
        return self.size

    @property
    def decoded_bytes(self) -> int:
        """What :meth:`load` would hold."""
        return len(self) * 3 * self.size * self.size

    def __len__(self) -> int:
        return int(self.indices.numel())

    def subset(self, indices: Tensor) -> PackedImages:
        """The given rows of these images, in the given order (nothing is decoded)."""
        rows = torch.as_tensor(indices, dtype=torch.int64).reshape(-1)
        return PackedImages(self.split, self.size, self.indices.index_select(0, rows), self.workers)

    def batches(self, batch_size: int) -> Iterator[Tensor]:
        """The images, ``(B, 3, size, size)`` uint8, in order."""
        loader: DataLoader[dict[str, Any]] = DataLoader(
            Subset(self.split.center_views(self.size), self.indices.tolist()),
            batch_size=batch_size,
            num_workers=worker_processes(self.workers),
            worker_init_fn=ignore_stop_signals,  # a signal to the process group stops the parent, which ends them
        )
        for batch in batches_from_workers(loader):
            yield batch["images"]

    def load(self) -> ImageStore:
        """All of it decoded into memory."""
        images = list(self.batches(256))
        if not images:
            raise UserError(f"{self.split.path} holds no images")
        return ImageStore(torch.cat(images), self.labels, self.class_names)


SplitImages = ImageStore | PackedImages
"""A split as evaluation reads it: decoded in memory, or packed and decoded batch by batch when read."""


def load_packed_in_memory(request: LoadRequest) -> ImageStore | None:
    """A packed split decoded into memory (its centre views; the first ``limit`` samples, a random subset):
    for the commands that hold their data (the autoencoder of ``train-ae``). Pretraining and evaluation
    stream packed data instead (:meth:`simclr.data.source.DataSource.streamed`)."""
    data_dir, split = request.data_dir, request.split
    if data_dir is None:
        raise UserError("a packed dataset needs its folder; pass --data-dir OUT of 'simclr data pack'")
    wait_for_packer(Path(data_dir))
    folder = find_packed_split(Path(data_dir), request.folder_split)
    if folder is None:
        if split == "test":
            return None
        raise UserError(f"{data_dir} holds no packed dataset; create one with 'simclr data pack SRC {data_dir}'")
    size = request.image_size or packed_image_size(Path(data_dir))
    return hold_packed_split(PackedSplit(folder), request.folder_split, size, request.limit, request.workers)


def hold_packed_split(packed: PackedSplit, split: str, size: int, limit: int | None, workers: int) -> ImageStore:
    """The first ``limit`` samples of ``packed``, the ``split`` (train or test) of its dataset, decoded into
    memory at ``size`` px (a random subset: packs are stored shuffled), at most what fits in
    :data:`IN_MEMORY_PACKED_BYTES` (said in one line when that cuts)."""
    fitting = max(1, IN_MEMORY_PACKED_BYTES // (3 * size * size))
    count = min(limit or len(packed), len(packed))
    if count > fitting:
        log.warning(
            "%s split of %s: %d images at %d px would take %.1f GB in memory; using the first %d "
            "(a random subset: packs are stored shuffled); --limit-%s-images N to choose",
            split, packed.path, count, size, count * 3 * size * size / 2**30, fitting, split,
        )  # fmt: skip
        count = fitting
    return packed.load_first(count, size, workers)
