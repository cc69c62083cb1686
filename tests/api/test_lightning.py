"""simclr as Lightning: ``pretrain(config, callbacks=, loggers=, trainer_kwargs=)`` hands them to the run's
Trainer (and refuses, in one line, the Trainer options simclr sets itself), the run's checkpoint carries the
``hyper_parameters`` that ``SimCLRModule.load_from_checkpoint`` rebuilds the module from, and
``SimCLRModule.from_config`` builds one for a Trainer of one's own."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import EarlyStopping
from lightning.pytorch.loggers import Logger
from torch.utils.data import DataLoader, TensorDataset

from simclr import PretrainConfig, RunDir, SimCLRModule, pretrain
from simclr.config import build_config
from simclr.data.catalog import dataset_info
from simclr.errors import UserError
from simclr.models.backbone_file import read_backbone_tensors
from simclr.settings import config_to_dict
from simclr.training.checkpoint_io import load_checkpoint_safely
from simclr.training.plan import plan_schedule, resolve_hardware
from simclr.training.pretrain import SIMCLR_TRAINER_OPTIONS, simclr_trainer_options

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/api/conftest.py


class StepCounter(L.Callback):
    """Counts the training batches it is told about, and keeps the gradient clipping the Trainer was given."""

    def __init__(self) -> None:
        self.batches = 0
        self.gradient_clip_val: Any = None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.gradient_clip_val = trainer.gradient_clip_val

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        self.batches += 1


class RecordingLogger(Logger):
    """A Lightning logger of one's own: keeps every ``log_metrics`` call."""

    def __init__(self) -> None:
        super().__init__()
        self.metrics: list[tuple[int | None, dict[str, float]]] = []

    @property
    def name(self) -> str:
        return "recording"

    @property
    def version(self) -> int:
        return 0

    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        pass

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self.metrics.append((step, dict(metrics)))


def tiny_config(out: Path, **changes: object) -> PretrainConfig:
    """ResNet-18 at 16 px, 64 images in 4 steps of 16, float32, no kNN monitor: a run of seconds."""
    values: dict[str, object] = dict(
        batch_size=16, epochs=1, precision="32", workers=0, knn_every_epochs=0, out=str(out), optimizer="sgd"
    )
    return PretrainConfig(**{**values, **changes})  # type: ignore[arg-type]


def tensors(count: int = 64) -> TensorDataset:
    generator = torch.Generator().manual_seed(0)
    return TensorDataset(torch.randint(0, 256, (count, 3, 16, 16), dtype=torch.uint8, generator=generator))


def same_state(first: dict[str, torch.Tensor], second: dict[str, torch.Tensor]) -> bool:
    """The same tensors under the same names, bit for bit."""
    return first.keys() == second.keys() and all(torch.equal(first[name], second[name]) for name in first)


def test_callbacks_loggers_and_trainer_options_reach_the_run_and_its_checkpoint_rebuilds_the_module(
    tmp_path: Path,
) -> None:
    counter, logger, config = StepCounter(), RecordingLogger(), tiny_config(tmp_path / "run", max_steps=2)
    result = pretrain(
        config, dataset=tensors(), callbacks=[counter], loggers=[logger], trainer_kwargs={"gradient_clip_val": 1.0}
    )
    run = RunDir(result.run_dir)
    assert result.global_step == 2 and counter.batches == 2
    assert counter.gradient_clip_val == 1.0
    logged = {step: metrics for step, metrics in logger.metrics if "train_loss" in metrics}
    assert sorted(logged) == [0, 1] and all(torch.isfinite(torch.tensor(m["train_loss"])) for m in logged.values())

    # the checkpoint holds plain values only (simclr's own weights-only reader takes it) ...
    checkpoint = load_checkpoint_safely(run.last_checkpoint)
    saved = checkpoint["hyper_parameters"]
    assert build_config(saved["config"], {}) == run.read_config()  # the run's config.yaml, as a plain dict
    assert (saved["image_size"], saved["steps_per_epoch"], saved["processes"], saved["streamed"]) == (16, 4, 1, False)

    # ... that rebuild the module with the run's weights
    module = SimCLRModule.load_from_checkpoint(run.last_checkpoint)
    assert isinstance(module, SimCLRModule) and module.optim.total_steps == 4
    assert same_state(module.model.backbone.state_dict(), read_backbone_tensors(run.backbone))

    # and `--resume` continues from it to the end of the schedule
    finished = pretrain(
        replace(config, resume=str(run.path), max_steps=None), dataset=tensors(), resume_with_changes=True
    )
    assert finished.global_step == 4
    again = SimCLRModule.load_from_checkpoint(run.last_checkpoint).model.backbone.state_dict()
    assert same_state(again, read_backbone_tensors(run.backbone))
    assert not same_state(again, module.model.backbone.state_dict())  # two more steps trained


def test_trainer_options_simclr_sets_are_refused_in_one_line_before_anything_is_written(tmp_path: Path) -> None:
    config = tiny_config(tmp_path / "run")
    cases = [
        (
            {"trainer_kwargs": {"precision": "bf16-mixed"}},
            r"trainer_kwargs\['precision'\] is set by simclr; use config\.precision",
        ),
        ({"trainer_kwargs": {"max_epochs": 3}}, r"use config\.epochs instead"),
        ({"trainer_kwargs": {"callbacks": []}}, r"use pretrain\(callbacks=\[\.\.\.\]\) instead"),
        ({"trainer_kwargs": {"gradient_clip": 1.0}}, r"'gradient_clip'\] is not an option of lightning\.Trainer"),
        ({"callbacks": [object()]}, r"callbacks holds an item of type object, not a lightning Callback"),
        ({"loggers": ["csv"]}, r"loggers holds an item of type str, not a lightning Logger"),
    ]
    for arguments, message in cases:
        with pytest.raises(UserError, match=message) as raised:
            pretrain(config, dataset=tensors(), **arguments)  # type: ignore[arg-type]
        assert len(str(raised.value).splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_early_stopping_on_the_validation_loss_stops_the_run_and_keeps_its_files(tmp_path: Path) -> None:
    # 24 training images in 3 steps an epoch, 8 held out; no epoch gains 100 on the first: stop after the second
    config = tiny_config(tmp_path / "run", epochs=3, val_fraction=0.25, batch_size=8)
    stop = EarlyStopping(monitor="val_loss", min_delta=100.0, patience=1)
    result = pretrain(config, dataset=tensors(32), callbacks=[stop])
    assert result.global_step == 6 and stop.stopped_epoch == 1
    run = RunDir(result.run_dir)
    assert load_checkpoint_safely(run.last_checkpoint)["global_step"] == 6
    assert same_state(
        SimCLRModule.load_from_checkpoint(run.last_checkpoint).model.backbone.state_dict(),
        read_backbone_tensors(run.backbone),
    )


def test_every_trainer_option_simclr_sets_is_listed_as_refused_and_documented(tmp_path: Path) -> None:
    config = build_config({}, {"accelerator": "cpu", "precision": "32"})
    options = simclr_trainer_options(
        config, resolve_hardware(config), plan_schedule(config, 4), [], [], RunDir(tmp_path)
    )
    assert set(options) <= set(SIMCLR_TRAINER_OPTIONS), set(options) - set(SIMCLR_TRAINER_OPTIONS)
    api = (Path(__file__).resolve().parents[2] / "docs" / "API.md").read_text()
    table = api[api.index("| `trainer_kwargs` key |") :]
    assert [key for key in SIMCLR_TRAINER_OPTIONS if f"`{key}`" not in table.split("\n\n")[0]] == []


def test_from_config_trains_with_a_plain_trainer_on_tuples_of_images(tmp_path: Path) -> None:
    config = PretrainConfig(dataset="python", batch_size=8, epochs=1, precision="32", seed=3)
    module = SimCLRModule.from_config(config, image_size=16, steps_per_epoch=2)
    same = SimCLRModule.from_config(config, image_size=16, steps_per_epoch=2)
    assert same_state(module.state_dict(), same.state_dict())  # the initial weights come from config.seed
    assert module.hparams["config"] == config_to_dict(config) and module.optim.total_steps == 2
    before = {name: value.clone() for name, value in module.model.state_dict().items()}

    images = tensors(16).tensors[0]
    loader = DataLoader(TensorDataset(images, torch.zeros(16)), batch_size=8)  # (images, labels) batches
    trainer = L.Trainer(
        max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, default_root_dir=tmp_path,
    )  # fmt: skip
    trainer.fit(module, loader)
    assert trainer.global_step == 2
    moved = [name for name, value in module.model.state_dict().items() if not torch.equal(value, before[name])]
    assert any("backbone" in name for name in moved)

    trainer.save_checkpoint(tmp_path / "own.ckpt")
    loaded = SimCLRModule.load_from_checkpoint(tmp_path / "own.ckpt")
    assert same_state(loaded.state_dict(), module.state_dict())


def test_from_config_makes_its_views_with_the_data_info_it_is_given() -> None:
    """The caller that loaded the data passes its constants (``run_pretraining`` its ``data.info``); without them
    from_config takes the catalog's for the dataset."""
    config = PretrainConfig(dataset="cifar10", batch_size=8, precision="32")
    loaded = replace(dataset_info("cifar10", 16), mean=(0.1, 0.2, 0.3), std=(0.4, 0.5, 0.6), jitter_strength=0.9)
    given = SimCLRModule.from_config(config, image_size=16, steps_per_epoch=1, info=loaded).views.config
    assert (given.mean, given.std) == (loaded.mean, loaded.std)
    catalog = SimCLRModule.from_config(config, image_size=16, steps_per_epoch=1).views.config
    assert (catalog.mean, catalog.std) == (dataset_info("cifar10", 16).mean, dataset_info("cifar10", 16).std)
    assert (given.jitter_strength, catalog.jitter_strength) == (0.9, 0.5)  # the given constants, all of them


def test_load_from_checkpoint_says_what_it_cannot_rebuild(tmp_path: Path) -> None:
    module = SimCLRModule.from_config(
        PretrainConfig(dataset="python", precision="32"), image_size=16, steps_per_epoch=1
    )
    bare = tmp_path / "bare.ckpt"
    torch.save({"state_dict": module.state_dict(), "global_step": 0}, bare)
    with pytest.raises(UserError, match="holds no simclr hyper_parameters .*simclr pretrain --resume"):
        SimCLRModule.load_from_checkpoint(bare)
    with pytest.raises(UserError, match="takes no weights_only=False"):
        SimCLRModule.load_from_checkpoint(bare, weights_only=False)
    with pytest.raises(UserError, match=r"module of your own \(x\.Net\).*backbone=YourModule\(\)"):
        SimCLRModule.from_config(PretrainConfig(backbone="custom:x.Net"), image_size=16, steps_per_epoch=1)
