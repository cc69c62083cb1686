"""Hands the in-memory training split to Lightning as a resumable batch iterable, sharded by rank."""

from __future__ import annotations

import lightning as L

from simclr.data import ImageStore, InMemoryBatchLoader


class ResumableBatches:
    """Wraps :class:`InMemoryBatchLoader` with the position Lightning must save and restore.

    Lightning prefetches a batch ahead, so the loader's own read position is not the training position.
    The training step reports the batches it really consumed (``mark_consumed``); a checkpoint stores that,
    and a resumed run starts exactly at the first batch not yet trained on.
    """

    def __init__(self, loader: InMemoryBatchLoader) -> None:
        self.loader = loader
        self.epoch = 0
        self.start = 0
        self.consumed = (0, 0)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):  # type: ignore[no-untyped-def]
        epoch, start = self.epoch, self.start
        self.loader.set_position(epoch, start)
        yield from self.loader
        self.epoch, self.start = epoch + 1, 0

    def mark_consumed(self, epoch: int, batches: int) -> None:
        self.consumed = (epoch, batches)

    def state_dict(self) -> dict[str, int]:
        epoch, batches = self.consumed
        return {"epoch": epoch, "consumed": batches}

    def load_state_dict(self, state: dict[str, int]) -> None:
        epoch, consumed = int(state["epoch"]), int(state["consumed"])
        if consumed >= len(self.loader):
            self.epoch, self.start = epoch + 1, 0
        else:
            self.epoch, self.start = epoch, consumed


class InMemoryDataModule(L.LightningDataModule):
    """The training split is already decoded in memory; this only builds the per-rank batch iterable."""

    def __init__(self, store: ImageStore, batch_size: int, seed: int) -> None:
        super().__init__()
        self.store = store
        self.batch_size = batch_size
        self.seed = seed
        self.batches: ResumableBatches | None = None

    def train_dataloader(self) -> ResumableBatches:
        trainer = self.trainer
        assert trainer is not None
        loader = InMemoryBatchLoader(
            self.store,
            self.batch_size,
            seed=self.seed,
            drop_last=True,
            shuffle=True,
            rank=trainer.global_rank,
            world_size=trainer.world_size,
        )
        self.batches = ResumableBatches(loader)
        module = trainer.lightning_module
        module.train_loader = self.batches  # type: ignore[assignment]
        return self.batches
