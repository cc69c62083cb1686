"""Deterministic, resumable, shardable batches drawn by index from an :class:`ImageStore`."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from simclr.data.pairs import SameClassPartners
from simclr.data.store import ImageStore
from simclr.errors import UserError

__all__ = ["PARTNER_KEY", "InMemoryBatchLoader", "epoch_permutation"]

PARTNER_KEY = "partner_images"  # --positives class: the batch entry the second views are made from


def _epoch_generator(seed: int, epoch: int, *stream: int) -> torch.Generator:
    # SeedSequence mixes (seed, epoch, stream) into well-separated streams (no seed+epoch collisions).
    words = [int(seed) & 0xFFFF_FFFF, int(epoch) & 0xFFFF_FFFF, *stream]
    state = np.random.SeedSequence(words).generate_state(2)
    return torch.Generator().manual_seed((int(state[0]) << 32 | int(state[1])) & 0x7FFF_FFFF_FFFF_FFFF)


def epoch_permutation(n: int, seed: int, epoch: int, shuffle: bool = True) -> torch.Tensor:
    """The global order of epoch ``epoch``: a function of ``(n, seed, epoch)`` only."""
    if not shuffle:
        return torch.arange(n, dtype=torch.int64)
    return torch.randperm(n, generator=_epoch_generator(seed, epoch))


def epoch_partner_draws(n: int, seed: int, epoch: int) -> torch.Tensor:
    """One uniform number per position of epoch ``epoch``'s permutation, which picks the same-class partner
    of the image there (``--positives class``): sliced by rank as the permutation is, so the pairs of a
    multi-process or resumed run are those of one uninterrupted process."""
    return torch.rand(n, generator=_epoch_generator(seed, epoch, 1))


class InMemoryBatchLoader:
    """Iterable of batches drawn by index from an ImageStore. Epoch order is a permutation derived
    from (seed, epoch) only, so resuming at (epoch, batch) reproduces the same batches; shards by
    (rank, world_size) so W processes see disjoint parts of the same global permutation.

    Global step ``k`` covers ``perm[k*B*W : (k+1)*B*W]`` and rank ``r`` takes the ``r``-th block of
    ``B`` in it, so the union over ranks of step ``k`` is exactly the single-process batch ``k`` of
    size ``B*W``. With ``drop_last=False`` the final partial global batch is split as evenly as
    possible (sizes differ by at most one); every rank yields the same number of batches, so a
    rank's last batch can be empty when fewer images than ranks remain.

    Iterating to the end of an epoch advances to the next epoch; :meth:`set_position` jumps.
    Batches are dicts ``{"images": uint8 (b,3,H,W), "labels": int64 (b,), "index": int64 (b,)}``
    plus ``"factors"`` ``float32 (b,k)`` when the store has them, and :data:`PARTNER_KEY` (a different
    image of the same class for each image) when ``partners`` is given.

    Batches are gathered where the store lives: a store moved to the GPU (``ImageStore.to``) gives batches
    already there (the epoch's order is copied once per epoch, no image crosses per step); a host store
    gives pinned batches with ``pin_memory``, so the copy to the GPU runs asynchronously.
    """

    def __init__(
        self,
        store: ImageStore,
        batch_size: int,
        seed: int,
        drop_last: bool = True,
        shuffle: bool = True,
        rank: int = 0,
        world_size: int = 1,
        partners: SameClassPartners | None = None,
        pin_memory: bool = False,
    ) -> None:
        if batch_size < 1:
            raise UserError(f"batch size must be >= 1, got {batch_size}; pass a positive --batch-size")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
        self.store = store
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.drop_last = bool(drop_last)
        self.shuffle = bool(shuffle)
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.pin_memory = bool(pin_memory) and store.images.device.type == "cpu"
        self.partners = partners.to(store.images.device) if partners is not None else None
        self.epoch = 0
        self.batch = 0  # next batch of the current epoch to yield
        n = len(store)
        if drop_last and n < self.global_batch_size:
            raise UserError(
                f"the dataset has {n} images, fewer than one global batch of {self.global_batch_size} "
                f"({batch_size} per process x {world_size}); lower --batch-size or use more data"
            )

    @property
    def global_batch_size(self) -> int:
        return self.batch_size * self.world_size

    def __len__(self) -> int:
        """Batches per epoch for this rank (the same on every rank)."""
        n = len(self.store)
        g = self.global_batch_size
        return n // g if self.drop_last else -(-n // g)

    def set_position(self, epoch: int, start_batch: int = 0) -> None:
        """Make the next iteration yield epoch ``epoch`` from batch ``start_batch`` on."""
        if epoch < 0 or start_batch < 0:
            raise ValueError(f"epoch and start_batch must be >= 0, got {epoch}, {start_batch}")
        self.epoch = int(epoch)
        self.batch = int(start_batch)

    def set_epoch(self, epoch: int) -> None:
        """Alias of ``set_position(epoch, 0)``."""
        self.set_position(epoch, 0)

    def state_dict(self) -> dict:
        """``{"epoch", "batch"}``: where the next batch comes from. A finished epoch is reported
        as the start of the next one."""
        epoch, batch = self.epoch, self.batch
        if batch >= len(self):
            epoch, batch = epoch + 1, 0
        return {"epoch": epoch, "batch": batch, "seed": self.seed}

    def load_state_dict(self, state: dict) -> None:
        self.set_position(int(state["epoch"]), int(state.get("batch", 0)))

    def _rank_slice(self, perm: torch.Tensor, k: int) -> torch.Tensor:
        g = self.global_batch_size
        lo = k * g
        chunk_len = min(g, perm.numel() - lo)
        if chunk_len == g:
            start = lo + self.rank * self.batch_size
            return perm[start : start + self.batch_size]
        # Final partial global batch (drop_last=False): split as evenly as possible.
        base, extra = divmod(chunk_len, self.world_size)
        start = lo + self.rank * base + min(self.rank, extra)
        size = base + (1 if self.rank < extra else 0)
        return perm[start : start + size]

    def gather(self, idx: torch.Tensor, partner_idx: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The batch dict for the given store indices (and the partners' images when given)."""
        store = self.store
        out = {
            "images": store.images.index_select(0, idx),
            "labels": store.labels.index_select(0, idx),
            "index": idx.clone(),
        }
        if store.factors is not None:
            out["factors"] = store.factors.index_select(0, idx)
        if partner_idx is not None:
            out[PARTNER_KEY] = store.images.index_select(0, partner_idx)
        if self.pin_memory:
            out = {name: tensor.pin_memory() for name, tensor in out.items()}
        return out

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        epoch = self.epoch
        # the order is drawn on the host (the same on every machine), then kept where the store lives
        perm = epoch_permutation(len(self.store), self.seed, epoch, self.shuffle).to(self.store.images.device)
        draws = None
        if self.partners is not None:
            draws = epoch_partner_draws(len(self.store), self.seed, epoch).to(self.store.images.device)
        n_batches = len(self)
        while self.epoch == epoch and self.batch < n_batches:
            k = self.batch
            self.batch = k + 1  # position = next batch, also while the consumer holds batch k
            idx = self._rank_slice(perm, k)
            partner_idx = None
            if self.partners is not None and draws is not None:
                partner_idx = self.partners.draw(idx, self._rank_slice(draws, k))
            yield self.gather(idx, partner_idx)
        if self.epoch == epoch:
            self.epoch, self.batch = epoch + 1, 0
