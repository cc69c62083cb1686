"""``pretrain(config, dataset=...)`` with a Dataset that streams: an IterableDataset is read in its own order,
resumes by skipping the items of the steps already trained on, and needs max_steps or a length; a map-style
Dataset over the memory budget streams the batches the in-memory path draws, and says so."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
from torch.utils.data import Dataset, IterableDataset

from simclr import PretrainConfig, pretrain
from simclr.data.loader import InMemoryBatchLoader
from simclr.data.python_stream import StreamBatches, stream_python_dataset
from simclr.data.store import ImageStore
from simclr.errors import UserError
from simclr.training.pretrain import run_pretraining

COUNT = 64

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/api/conftest.py


def tiny_image(index: int) -> torch.Tensor:
    return torch.randint(0, 256, (3, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(index))


class Stream(IterableDataset):  # type: ignore[type-arg]
    """``count`` labelled 16 px images, generated as they are read, always in the same order; no ``len()``."""

    classes = ["a", "b", "c", "d"]

    def __init__(self, count: int = COUNT, bad_at: int | None = None) -> None:
        self.count = count
        self.bad_at = bad_at

    def __iter__(self) -> Iterator[object]:
        for index in range(self.count):
            yield "not an image" if index == self.bad_at else (tiny_image(index), index % 4)


class Pictures(Dataset):  # type: ignore[type-arg]
    """The same images, by index."""

    def __len__(self) -> int:
        return COUNT

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return tiny_image(index), index % 4


class Batches(L.Callback):
    """The ``index`` entry of every batch trained on."""

    def __init__(self) -> None:
        self.indices: list[list[int]] = []

    def on_train_batch_end(
        self, trainer: L.Trainer, module: L.LightningModule, outputs: Any, batch: Any, i: int
    ) -> None:
        self.indices.append(batch["index"].tolist())


def tiny_config(out: Path, **changes: object) -> PretrainConfig:
    values: dict[str, object] = dict(
        batch_size=8, epochs=1, precision="32", workers=0, knn_every_epochs=0, checkpoint_every_steps=0, out=str(out)
    )
    return PretrainConfig(**{**values, **changes})  # type: ignore[arg-type]


def test_an_iterable_dataset_trains_and_resumes_by_skipping_ahead(tmp_path: Path) -> None:
    whole = Batches()
    config = tiny_config(tmp_path / "whole", max_steps=6)
    run_pretraining(config, quiet=True, extra_callbacks=[whole], dataset=Stream())
    assert whole.indices == [list(range(step * 8, step * 8 + 8)) for step in range(6)]  # its own order

    stopped = pretrain(tiny_config(tmp_path / "run", max_steps=3), dataset=Stream())
    assert stopped.global_step == 3
    log = (tmp_path / "run" / "train.log").read_text()
    assert "an IterableDataset, streamed in its own order" in log
    assert "the schedule spans max_steps 3 steps" in log
    resumed = Batches()
    again = replace(tiny_config(tmp_path / "run", max_steps=6, workers=2), resume=str(tmp_path / "run"))
    result = run_pretraining(again, quiet=True, extra_callbacks=[resumed], dataset=Stream())
    assert result.global_step == 6
    assert resumed.indices == whole.indices[3:]  # skipped ahead past the 3 steps trained on, in 2 workers


def test_an_iterable_dataset_without_length_or_max_steps_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(UserError) as error:
        pretrain(tiny_config(tmp_path / "run"), dataset=Stream())
    message = str(error.value)
    assert "\n" not in message
    assert "IterableDataset without len()" in message and "set max_steps" in message
    assert not (tmp_path / "run").exists()


def test_a_map_style_dataset_over_the_budget_streams_the_batches_held_data_draws(tmp_path: Path) -> None:
    held, streamed = Batches(), Batches()
    in_memory = run_pretraining(tiny_config(tmp_path / "held"), quiet=True, extra_callbacks=[held], dataset=Pictures())
    config = tiny_config(tmp_path / "streamed", memory_budget="16K", workers=2)  # 64 x 768 bytes do not fit
    result = run_pretraining(config, quiet=True, extra_callbacks=[streamed], dataset=Pictures())
    assert "read into memory" in (tmp_path / "held" / "train.log").read_text()
    log = (tmp_path / "streamed" / "train.log").read_text()
    assert "64 images at 16 px take 48.0 KB decoded; memory budget 16.0 KB: streamed" in log
    assert "streamed, read by index in the loader workers" in log
    assert streamed.indices == held.indices and len(held.indices) == COUNT // 8
    assert result.final_loss == pytest.approx(in_memory.final_loss)  # the same images, views and steps


@pytest.mark.parametrize("workers", [0, 2])
def test_each_rank_and_worker_reads_its_own_batches(workers: int) -> None:
    store = ImageStore(torch.zeros(COUNT, 3, 1, 1, dtype=torch.uint8), torch.zeros(COUNT, dtype=torch.int64), [])
    for dataset in (Stream(), Pictures()):
        stream = stream_python_dataset(dataset, 16, "crop", memory_budget=1)
        assert stream is not None
        for rank in range(2):
            batches = StreamBatches(stream, 4, seed=3, rank=rank, world_size=2, workers=workers)
            batches.set_position(1, 2)
            read = [batch["index"].tolist() for batch in batches]
            if isinstance(dataset, Pictures):  # by index: the batches of the in-memory loader
                held = InMemoryBatchLoader(store, 4, seed=3, rank=rank, world_size=2)
                held.set_position(1, 2)
                assert read == [batch["index"].tolist() for batch in held]
            else:  # in its own order: step s is items 8s..8s+7, rank r takes the r-th 4 of them
                assert read == [list(range(8 * step + 4 * rank, 8 * step + 4 * rank + 4)) for step in range(2, 8)]


def test_a_bad_item_read_in_a_worker_is_one_line() -> None:
    stream = stream_python_dataset(Stream(bad_at=13), 16, "crop", memory_budget=None)
    assert stream is not None
    with pytest.raises(UserError) as error:
        list(StreamBatches(stream, 4, seed=0, workers=2))
    assert str(error.value).startswith("item 13 of ") and "\n" not in str(error.value)


def test_an_iterable_dataset_shorter_than_one_global_batch_is_one_line_not_a_run_of_no_steps() -> None:
    stream = stream_python_dataset(Stream(count=7), 16, "crop", memory_budget=None)
    assert stream is not None
    with pytest.raises(UserError) as error:
        list(StreamBatches(stream, 4, seed=0, world_size=2))
    message = str(error.value)
    assert "\n" not in message
    assert "yielded fewer items than one global batch of 8 (4 per process x 2) in epoch 0" in message
    resumed_at_the_end = StreamBatches(stream, 4, seed=0, world_size=2)
    resumed_at_the_end.set_position(0, 1)  # an epoch resumed after its last step has nothing left: no error
    assert list(resumed_at_the_end) == []
