"""Train simclr's Lightning module with a Lightning Trainer of your own, on images held in memory.

Run it as ``python examples/lightning_trainer.py``; tiny sizes (16 px, 8 images a step, 4 steps) keep it to
seconds on a CPU. ``SimCLRModule.from_config`` builds what ``simclr pretrain`` trains (the network, the views
made on the training device, NT-Xent, the optimiser and its warmup + cosine schedule) from a
``PretrainConfig``; the Trainer, its callbacks, loggers and data are yours. A DataLoader of a ``TensorDataset``
of uint8 ``(N, 3, H, W)`` images (or of ``(images, labels)``) is what the module takes. To have simclr run the
Trainer instead (its run directory, checkpoints, resume, the kNN monitor), pass your callbacks and options to
``simclr.pretrain(config, dataset=..., callbacks=[...], trainer_kwargs={...})`` (docs/API.md).
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset

from simclr import PretrainConfig, SimCLRModule


class LossHistory(L.Callback):
    """Collects the loss of every step (what the training step returns)."""

    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx) -> None:  # type: ignore[no-untyped-def]
        self.losses.append(float(outputs["loss"]))


def main(out: Path | None = None, steps: int = 4, batch_size: int = 8, size: int = 16) -> list[float]:
    torch.manual_seed(0)
    images = torch.randint(0, 256, (batch_size * steps, 3, size, size), dtype=torch.uint8)  # your images here
    loader = DataLoader(TensorDataset(images), batch_size=batch_size, shuffle=True, drop_last=True)

    # `simclr pretrain`'s settings: ResNet-18 (small-image stem), LARS, one epoch of len(loader) steps; "python":
    # images of your own, normalised with ImageNet's statistics (or set normalization_mean and normalization_std)
    config = PretrainConfig(dataset="python", batch_size=batch_size, epochs=1, warmup_epochs=0, precision="32")
    module = SimCLRModule.from_config(config, image_size=size, steps_per_epoch=len(loader))

    history = LossHistory()
    trainer = L.Trainer(
        max_epochs=1,
        accelerator="cpu",
        callbacks=[history],
        gradient_clip_val=1.0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=out,
    )
    trainer.fit(module, loader)
    if out is not None:  # the checkpoint holds the config: load_from_checkpoint rebuilds the module from it
        trainer.save_checkpoint(out / "simclr.ckpt")
        again = SimCLRModule.load_from_checkpoint(out / "simclr.ckpt")
        assert all(
            torch.equal(a, b) for a, b in zip(again.state_dict().values(), module.state_dict().values(), strict=True)
        )
    for step, loss in enumerate(history.losses):
        print(f"step {step}: loss {loss:.4f}")
    return history.losses


if __name__ == "__main__":
    main()
