"""Hands the training split to Lightning: in memory as a resumable batch iterable sharded by rank, a Python
Dataset streamed the same way, or streamed from packed shards by litdata."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import lightning as L
import torch
from litdata import StreamingDataLoader

from simclr.data.loader import InMemoryBatchLoader
from simclr.data.pairs import SameClassPartners
from simclr.data.python_stream import PythonStream, StreamBatches
from simclr.data.store import ImageStore
from simclr.data.streaming import PackedSplit, collate_encoded, decode_on_device
from simclr.hardware import DEVICE_STORE_FRACTION, free_device_memory, store_fits_on_device, worker_processes
from simclr.stop_signals import ignore_stop_signals, starting_helpers
from simclr.views.config import ViewConfig
from simclr.views.per_image import crop_views_on_device

POSITION_KEY = "position"

log = logging.getLogger("simclr")


def place_store(store: ImageStore, device: torch.device, free_bytes: int | None = None) -> ImageStore:
    """The training store where batches are gathered: on a CUDA device when it fits there
    (:func:`~simclr.hardware.store_fits_on_device`), so no image is copied to the GPU per step; else where
    it is. ``free_bytes`` defaults to the device's free memory now."""
    if device.type != "cuda":
        return store
    free = free_device_memory(device) if free_bytes is None else free_bytes
    if store_fits_on_device(store.nbytes, free, DEVICE_STORE_FRACTION):
        log.info("training images on %s: %.0f MB gathered there by index each step", device, store.nbytes / 2**20)
        return store.to(device)
    log.info(
        "training images stay in host memory (%.0f MB > %g of the %.0f MB free on %s); pinned batches copied "
        "asynchronously",
        store.nbytes / 2**20,
        DEVICE_STORE_FRACTION,
        free / 2**20,
        device,
    )
    return store


class ResumableBatches:
    """Wraps :class:`InMemoryBatchLoader` (or a streamed Python Dataset's :class:`StreamBatches`) with the
    position Lightning must save and restore.

    Lightning prefetches a batch ahead and may stop reading an epoch before the iterator is exhausted,
    so neither the loader's read position nor generator exhaustion tells where training is. The
    training step reports the batches it really consumed (``mark_consumed`` with the batch's
    ``position``); a checkpoint stores that,
    and every new iteration starts at the first batch not yet trained on: the rest of the consumed
    epoch, or the start of the trainer's current epoch once that one is finished or left behind.
    """

    def __init__(self, loader: InMemoryBatchLoader | StreamBatches, current_epoch: Callable[[], int]) -> None:
        self.loader = loader
        self.current_epoch = current_epoch
        self.consumed = (0, 0)

    def __len__(self) -> int:
        return len(self.loader)  # a TypeError for a stream without a length: Lightning then reads it to its end

    def start_position(self) -> tuple[int, int]:
        epoch, batches = self.consumed
        trainer_epoch = self.current_epoch()
        try:
            finished = batches >= len(self.loader)
        except TypeError:  # an epoch without a length is finished when Lightning has gone on to the next
            finished = False
        if finished or trainer_epoch > epoch:
            return max(trainer_epoch, epoch + finished), 0
        return epoch, batches

    def __iter__(self) -> Iterator[dict[str, Any]]:
        # Every batch says where the data stands once it is trained: (epoch, batches consumed). Lightning's
        # own batch index restarts at 0 after some restores (a run resumed from the end of an epoch, then
        # resumed again mid-epoch), so it cannot say which batches were trained.
        epoch, start = self.start_position()
        self.loader.set_position(epoch, start)
        for consumed, batch in enumerate(self.loader, start=start + 1):
            yield {**batch, POSITION_KEY: (epoch, consumed)}

    def mark_consumed(self, epoch: int, batches: int) -> None:
        self.consumed = (epoch, batches)

    def state_dict(self) -> dict[str, int]:
        epoch, batches = self.consumed
        return {"epoch": epoch, "consumed": batches}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.consumed = (int(state["epoch"]), int(state["consumed"]))


class InMemoryDataModule(L.LightningDataModule):
    """The training split is already decoded in memory; this only builds the per-rank batch iterable."""

    def __init__(
        self, store: ImageStore, batch_size: int, seed: int, partners: SameClassPartners | None = None
    ) -> None:
        super().__init__()
        self.store = store
        self.batch_size = batch_size
        self.seed = seed
        self.partners = partners
        self.batches: ResumableBatches | None = None

    def train_dataloader(self) -> ResumableBatches:
        trainer = self.trainer
        assert trainer is not None
        device = trainer.strategy.root_device
        loader = InMemoryBatchLoader(
            place_store(self.store, device),
            self.batch_size,
            seed=self.seed,
            drop_last=True,
            shuffle=True,
            rank=trainer.global_rank,
            world_size=trainer.world_size,
            partners=self.partners,
            pin_memory=device.type == "cuda",
        )
        self.batches = ResumableBatches(loader, current_epoch=lambda: trainer.current_epoch)
        module = trainer.lightning_module
        module.train_loader = self.batches  # type: ignore[assignment]
        return self.batches


class PythonStreamDataModule(L.LightningDataModule):
    """A Python Dataset streamed (:mod:`simclr.data.python_stream`): its items made into squares and batched in
    the loader workers, each rank reading its own batches, resumable by (epoch, batch) as data in memory is."""

    def __init__(self, stream: PythonStream, batch_size: int, seed: int, workers: int) -> None:
        super().__init__()
        self.stream = stream
        self.batch_size = batch_size
        self.seed = seed
        self.workers = workers

    def train_dataloader(self) -> ResumableBatches:
        trainer = self.trainer
        assert trainer is not None
        loader = StreamBatches(
            self.stream,
            self.batch_size,
            self.seed,
            rank=trainer.global_rank,
            world_size=trainer.world_size,
            workers=self.workers,
            pin_memory=trainer.strategy.root_device.type == "cuda",
        )
        batches = ResumableBatches(loader, current_epoch=lambda: trainer.current_epoch)
        trainer.lightning_module.train_loader = batches  # type: ignore[assignment]
        return batches


class _StreamingLoader(StreamingDataLoader):
    """litdata's loader, whose workers start within :func:`~simclr.stop_signals.starting_helpers` (and ignore
    SIGINT and SIGTERM from their ``worker_init_fn`` on): a signal sent to the process group while they start
    kills none of them, and stops the run as at any other moment. ``_get_iterator`` is where torch's DataLoader
    starts its workers, and the method litdata itself overrides."""

    def _get_iterator(self) -> Any:
        with starting_helpers():
            return super()._get_iterator()


class StreamingDataModule(L.LightningDataModule):
    """The training split streamed from packed shards by litdata: each rank and loader worker reads its own
    chunks, and the loader's position is saved in the checkpoint (litdata's ``StreamingDataLoader`` is
    stateful), so ``--resume`` continues mid-epoch without repeating or skipping samples."""

    def __init__(
        self,
        split: PackedSplit,
        batch_size: int,
        n_views: int,
        view_config: ViewConfig,
        seed: int,
        workers: int,
        subsample: float = 1.0,
        decode_on_device: bool = False,
    ) -> None:
        super().__init__()
        self.split = split
        self.batch_size = batch_size
        self.n_views = n_views
        self.view_config = view_config
        self.seed = seed
        self.workers = worker_processes(workers)
        self.subsample = subsample
        self.decode_on_device = decode_on_device

    def train_dataloader(self) -> StreamingDataLoader:
        if self.decode_on_device:  # the workers only read bytes and draw crop boxes
            dataset = self.split.encoded(self.n_views, self.view_config, self.seed, subsample=self.subsample)
            collate: Callable[[list[dict[str, Any]]], dict[str, Any]] | None = collate_encoded
        else:
            dataset = self.split.views(self.n_views, self.view_config, self.seed, subsample=self.subsample)
            collate = None
        return _StreamingLoader(
            dataset,
            batch_size=self.batch_size,
            num_workers=self.workers,
            drop_last=True,
            persistent_workers=self.workers > 0,
            collate_fn=collate,
            # a signal to the whole process group must stop the run, not kill its loader workers first:
            # they ignore it, the main process saves the checkpoint and shuts them down (StopOnSignal)
            worker_init_fn=ignore_stop_signals,
        )

    def on_before_batch_transfer(self, batch: dict[str, Any], dataloader_idx: int) -> dict[str, Any]:
        """With ``decode_on_device``, decode the batch's images on the training device in one call (torchvision
        reads the bytes from host memory) and cut their views there, before Lightning moves the rest."""
        if not self.decode_on_device:
            return batch
        device = self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")
        images = decode_on_device(batch.pop("encoded"), device)
        batch["views"] = crop_views_on_device(images, batch.pop("boxes"), self.view_config.size)
        return batch
