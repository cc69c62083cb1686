"""The training step never waits for the device: no ``aten._local_scalar_dense`` (the op behind
``.item()``, ``bool(t)`` and ``float(t)``) outside the log interval (issue 15).

On a GPU every such read stalls the host until the queued kernels finish, so the per-step overhead is
no longer hidden behind the model. A CPU run counts the op with a dispatch mode around every step (the
step, its backward pass and optimiser step, and every callback's batch-end hook)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from simclr.config import build_config
from simclr.training.pretrain import run_pretraining

LOG_EVERY = 3
STEPS = 8  # 64 images / 8 per batch: one epoch; the flushes fall after steps 3 and 6 and at the epoch's end


class ScalarReads(TorchDispatchMode):
    """Counts host reads of tensor values: ``aten._local_scalar_dense``, and ``Tensor.tolist`` (on the CPU it
    reads memory without dispatching an op; on a GPU it copies to the host, a synchronisation too)."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __enter__(self) -> ScalarReads:
        real_tolist = torch.Tensor.tolist

        def counted_tolist(tensor: torch.Tensor) -> Any:
            self.count += 1
            return real_tolist(tensor)

        self._real_tolist = real_tolist
        torch.Tensor.tolist = counted_tolist  # type: ignore[method-assign]
        super().__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        super().__exit__(*exc)
        torch.Tensor.tolist = self._real_tolist  # type: ignore[method-assign]

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        if func is torch.ops.aten._local_scalar_dense.default:
            self.count += 1
        return func(*args, **(kwargs or {}))


class CountPerStep(L.Callback):
    """Enters the counting mode when a batch starts and leaves it after every other callback's batch end."""

    def __init__(self) -> None:
        self.reads: dict[int, int] = {}  # global step after the batch -> reads during it
        self._mode: ScalarReads | None = None

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self._mode = ScalarReads()
        self._mode.__enter__()

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        assert self._mode is not None
        self._mode.__exit__(None, None, None)
        self.reads[trainer.global_step] = self._mode.count


def test_the_counter_sees_item_bool_and_tolist() -> None:
    with ScalarReads() as reads:
        value = torch.ones(2)
        value[0].item()
        bool(value[1] > 0)
        value.tolist()
    assert reads.count == 3


def test_steps_read_device_values_only_at_the_log_interval(cifar_small: Path, tmp_path: Path) -> None:
    counter = CountPerStep()
    config = build_config(
        {},
        dict(
            dataset="cifar10",
            data_dir=str(cifar_small),
            limit_train_images=8 * STEPS,
            batch_size=8,
            image_size=16,
            epochs=1,
            out=str(tmp_path / "run"),
            workers=0,
            knn_every_epochs=0,
            checkpoint_every_steps=0,
            log_every_steps=LOG_EVERY,
            precision="32",
        ),
    )
    run_pretraining(config, quiet=True, extra_callbacks=[counter])
    assert sorted(counter.reads) == list(range(1, STEPS + 1))
    flushes = {step for step in counter.reads if step % LOG_EVERY == 0 or step == STEPS}
    # the first step is left out: Lightning and the optimiser set themselves up there
    quiet_steps = {step: reads for step, reads in counter.reads.items() if step not in flushes and step > 1}
    assert quiet_steps and all(reads == 0 for reads in quiet_steps.values()), counter.reads
    assert all(counter.reads[step] > 0 for step in flushes), counter.reads  # the counter does see the reads
