"""A user's own Dataset streamed: an ``IterableDataset``, or a map-style Dataset whose images at the run's size
exceed the memory budget, read item by item in loader workers instead of whole into memory.

Each item becomes a uint8 square of the run's image size in a loader worker, as :func:`read_dataset` makes it
(:func:`~simclr.data.python_dataset.square_item`), and the squares are batched there; the views are made from
the batch on the training device, as for data held in memory.

Every epoch is one stream of items cut into batches: global step ``s`` takes items ``[s*B*R, (s+1)*B*R)`` of it
(``B`` the batch per process, ``R`` the processes) and rank ``r`` the ``r``-th block of ``B`` in them, the
layout of :class:`~simclr.data.loader.InMemoryBatchLoader`. The stream of a map-style Dataset is its items in
the epoch's permutation (:func:`~simclr.data.loader.epoch_permutation`: the batches of the in-memory path),
read by index; an IterableDataset's is its own order, which every loader worker of every process iterates,
keeping the batches that are its own (a rank's batches go to its workers in turn, as torch's DataLoader reads
them) and converting only those. Only whole global steps are read: an iteration's last incomplete step is left
out, so every process gets the same number of batches. A run resumed at batch ``b`` of an epoch starts its
stream at step ``b``: a map-style Dataset by index, an IterableDataset by iterating past the items of the
steps already trained on without converting them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, get_worker_info

from simclr.data.loader import epoch_permutation
from simclr.data.memory_budget import decide_memory, is_first_local_process
from simclr.data.python_dataset import (
    ITEM_HELP,
    common_image_size,
    dataset_class_name,
    declared_classes,
    rgb_item,
    square_item,
)
from simclr.data.store import ImageStore
from simclr.data.worker_batches import batches_from_workers
from simclr.errors import UserError
from simclr.hardware import worker_processes
from simclr.stop_signals import ignore_stop_signals

__all__ = ["PythonStream", "StreamBatches", "stream_python_dataset"]

log = logging.getLogger("simclr")


@dataclass(frozen=True)
class PythonStream:
    """A Dataset of the user's, streamed at ``image_size``: how long an epoch of it is (``length`` items; None
    for an IterableDataset without ``len()``), and what its labels are, read from its first item and its
    ``classes``."""

    dataset: Dataset[Any]
    image_size: int
    resize: str
    length: int | None
    has_labels: bool
    class_names: list[str]

    @property
    def name(self) -> str:
        return dataset_class_name(self.dataset)

    @property
    def iterable(self) -> bool:
        return isinstance(self.dataset, IterableDataset)

    def items(self, start: int = 0) -> Iterator[tuple[int, object]]:
        """``(position, item)`` of one pass over the Dataset in its own order (by index for a map-style one),
        from ``start`` on; an IterableDataset is iterated from its beginning and the first items skipped."""
        if self.iterable:
            stream: Iterable[object] = self.dataset  # type: ignore[assignment]
            for position, item in enumerate(stream):
                if self.length is not None and position >= self.length:
                    return
                if position >= start:
                    yield position, item
        else:
            for position in range(start, self.length or 0):
                yield position, self.dataset[position]

    def convert(self, item: object, position: int) -> tuple[np.ndarray, int]:
        """Item ``position`` as a ``(S, S, 3)`` uint8 square and its label (checked against the declared
        classes, which the online probe counts)."""
        where = f"{self.name}[{position}]" if not self.iterable else f"item {position} of {self.name}"
        array, label = square_item(item, where, self.image_size, self.resize)
        if self.class_names and label >= len(self.class_names):
            raise UserError(f"{where}: label {label} is not one of the {len(self.class_names)} classes it declares")
        return array, label

    def load_first(self, count: int, size: int, workers: int = 0) -> ImageStore:
        """The first ``count`` items in memory, converted in this process (for ``--standardize`` and the kNN
        monitor): the same ``size`` the stream is cut at; ``workers`` is unused (the items are read in order)."""
        if size != self.image_size:
            raise ValueError(f"this stream is cut at {self.image_size} px, not {size}")
        arrays, labels = [], []
        for position, item in self.items():
            if position >= count:
                break
            array, label = self.convert(item, position)
            arrays.append(array)
            labels.append(label)
        images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
        return ImageStore(images, torch.tensor(labels), self.class_names)


def stream_python_dataset(
    dataset: Dataset[Any], image_size: int | None, resize: str, memory_budget: int | None, processes: int = 1
) -> PythonStream | None:
    """The Dataset as a stream, or None when it is read whole into memory (:func:`read_dataset`).

    An IterableDataset always streams. A map-style Dataset streams when its images at ``image_size``, once per
    process of the machine (``processes``), exceed ``memory_budget`` bytes (None: half of the machine's memory,
    as for image folders: :func:`~simclr.data.memory_budget.decide_memory`). ``image_size`` None: the first
    image's side when it is a square, else the standard size below its shorter side. The decision is one log
    line, from the first process of the machine."""
    name = dataset_class_name(dataset)
    iterable = isinstance(dataset, IterableDataset)
    length = _length(dataset)
    if not iterable and not length:
        return None  # read_dataset names what is wrong with it
    first = next(iter(dataset), None) if iterable else dataset[0]  # type: ignore[call-overload]
    if first is None:
        raise UserError(f"{name} yields no items; {ITEM_HELP}")
    array, label = rgb_item(first, f"item 0 of {name}" if iterable else f"{name}[0]")
    size = image_size or common_image_size([array], name)
    classes = declared_classes(dataset) or []
    stream = PythonStream(dataset, size, resize, length, label >= 0 or bool(classes), classes)
    if iterable:
        if is_first_local_process():
            log.info(
                "%s: an IterableDataset, streamed in its own order (%s); each item made a %d px square in the "
                "loader workers",
                name,
                f"{length} items per epoch"
                if length is not None
                else "no len(): an epoch ends when its iteration does",
                size,
            )
        return stream
    assert length is not None
    decision = decide_memory(length * 3 * size * size, memory_budget, processes)
    if is_first_local_process():
        log.info(
            "%s: %d images at %d px %s: %s",
            name,
            length,
            size,
            decision.summary(),
            "read into memory"
            if decision.fits
            else "streamed, read by index in the loader workers (memory_budget in the config to change)",
        )
    return None if decision.fits else stream


def _length(dataset: Dataset[Any]) -> int | None:
    try:
        return len(dataset)  # type: ignore[arg-type]
    except TypeError:
        return None


class StreamBatches:
    """The batches of one process of a run from a :class:`PythonStream`, ``{"images": uint8 (B, 3, S, S),
    "labels": int64 (B,), "index": int64 (B,)}`` (``index``: the item's index in a map-style Dataset, its
    position in the epoch's iteration of an IterableDataset), made by ``workers`` loader processes.

    :meth:`set_position` says where the next iteration starts (epoch, batches of it already trained on);
    ``len()`` is the batches of an epoch, and a TypeError for a stream without a length."""

    def __init__(
        self,
        stream: PythonStream,
        batch_size: int,
        seed: int,
        *,
        rank: int = 0,
        world_size: int = 1,
        workers: int = 0,
        pin_memory: bool = False,
    ) -> None:
        global_batch = batch_size * world_size
        if stream.length is not None and stream.length < global_batch:
            raise UserError(
                f"{stream.name} has {stream.length} images, fewer than one global batch of {global_batch} "
                f"({batch_size} per process x {world_size}); lower --batch-size or use more data"
            )
        self.stream = stream
        self.batch_size = batch_size
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.workers = worker_processes(workers)
        self.pin_memory = pin_memory
        self.epoch = 0
        self.start = 0

    def __len__(self) -> int:
        if self.stream.length is None:
            raise TypeError(f"{self.stream.name} has no len()")
        return self.stream.length // (self.batch_size * self.world_size)

    def set_position(self, epoch: int, start_batch: int = 0) -> None:
        """Make the next iteration yield epoch ``epoch`` from its batch ``start_batch`` on."""
        self.epoch, self.start = int(epoch), int(start_batch)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        shard = _RankShard(self.stream, self.batch_size, self.seed, self.rank, self.world_size, self.epoch, self.start)
        loader: DataLoader[dict[str, torch.Tensor]] = DataLoader(
            shard,
            batch_size=None,  # the workers batch the items themselves
            num_workers=self.workers,
            pin_memory=self.pin_memory,
            # a signal to the whole process group must stop the run, not kill its loader workers first
            worker_init_fn=ignore_stop_signals,
        )
        batches = 0
        for batch in batches_from_workers(loader):
            batches += 1
            yield batch
        if batches == 0 and self.start == 0:  # a whole epoch without one step would end the run silently
            global_batch = self.batch_size * self.world_size
            raise UserError(
                f"{self.stream.name} yielded fewer items than one global batch of {global_batch} "
                f"({self.batch_size} per process x {self.world_size}) in epoch {self.epoch}; lower --batch-size "
                "or yield more items per iteration"
            )


@dataclass
class _RankShard(IterableDataset):  # type: ignore[type-arg]
    """What the loader workers of one rank read in one iteration: its batches of ``epoch`` from its batch
    ``start`` on, batch ``start + j`` made by worker ``j mod workers`` (the order torch's DataLoader reads its
    workers in)."""

    stream: PythonStream
    batch_size: int
    seed: int
    rank: int
    world_size: int
    epoch: int
    start: int

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        info = get_worker_info()
        workers, worker = (info.num_workers, info.id) if info is not None else (1, 0)
        step_items = self.batch_size * self.world_size
        if not self.stream.iterable:
            yield from self._by_index(step_items, workers, worker)
            return
        set_epoch = getattr(self.stream.dataset, "set_epoch", None)  # the convention of samplers and litdata
        if callable(set_epoch):
            set_epoch(self.epoch)
        pending: list[tuple[int, object]] = []
        for position, item in self.stream.items(start=self.start * step_items):
            step, offset = divmod(position, step_items)
            if offset // self.batch_size == self.rank and (step - self.start) % workers == worker:
                pending.append((position, item))
            if offset == step_items - 1 and pending:  # the step is whole: every rank has its batch of it
                yield self._batch(pending, [position for position, _ in pending])
                pending = []

    def _by_index(self, step_items: int, workers: int, worker: int) -> Iterator[dict[str, torch.Tensor]]:
        assert self.stream.length is not None
        order = epoch_permutation(self.stream.length, self.seed, self.epoch)
        for step in range(self.start + worker, self.stream.length // step_items, workers):
            first = step * step_items + self.rank * self.batch_size
            indices = order[first : first + self.batch_size].tolist()
            yield self._batch([(index, self.stream.dataset[index]) for index in indices], indices)

    def _batch(self, items: list[tuple[int, object]], indices: list[int]) -> dict[str, torch.Tensor]:
        converted = [self.stream.convert(item, position) for position, item in items]
        images = np.stack([array for array, _ in converted]).transpose(0, 3, 1, 2)
        return {
            "images": torch.from_numpy(np.ascontiguousarray(images)),
            "labels": torch.tensor([label for _, label in converted], dtype=torch.int64),
            "index": torch.tensor(indices, dtype=torch.int64),
        }
