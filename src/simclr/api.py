"""The public Python functions that do what a command does: :func:`pretrain` as ``simclr pretrain``.

The building blocks (the loss, the views, the backbones, the evaluation functions) are imported from their
own modules, or from ``simclr`` itself, which offers every public name.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.loggers import Logger
from torch import nn
from torch.utils.data import Dataset

from simclr.config import PretrainConfig
from simclr.rundir import RunDir
from simclr.training.pretrain import PretrainResult, run_pretraining, with_python_inputs
from simclr.training.resume import Changes, settle_resume


def pretrain(
    config: PretrainConfig,
    *,
    quiet: bool = True,
    dataset: Dataset[Any] | None = None,
    backbone: nn.Module | str | None = None,
    resume_with_changes: bool = False,
    callbacks: list[L.Callback] | None = None,
    loggers: list[Logger] | None = None,
    trainer_kwargs: dict[str, Any] | None = None,
) -> PretrainResult:
    """Pretrain from Python as ``simclr pretrain`` does from the command line, and return the run's result.

    ``config`` is validated first (a :class:`PretrainConfig` built by hand skips :func:`build_config`'s
    checks); ``quiet`` (the default here, unlike the CLI) keeps the progress bar off a notebook's output.

    ``dataset``: train on a map-style torch ``Dataset`` of your own instead of the config's dataset. Each item
    is an image (a PIL image of any mode, or a ``(C, H, W)`` tensor with 1, 3 or 4 channels, uint8 or float
    in [0, 1]) or an ``(image, label)`` pair; labels feed the kNN monitor and ``online_probe``. The whole
    Dataset is read once, in this process, into memory as uint8 squares of ``config.image_size`` (made as an
    image folder's are: gray repeated, alpha on black, shorter side resized and centre cut; default: the
    images' own size when they are all one square), so it costs 3 x size^2 bytes per image (50,000 at 32 px:
    150 MB; at 224 px: 7.5 GB) and the time of one pass over ``dataset[i]``. A Dataset whose images exceed
    ``config.memory_budget`` (default: half of the machine's memory), and any ``IterableDataset``, stream
    instead: items made into those squares in the loader workers, batch by batch (an IterableDataset without
    ``len()`` needs ``config.max_steps``; docs/API.md says what holds for order, resume and workers). The run's
    config.yaml records ``dataset: python`` and the Dataset's class; normalisation uses ImageNet's statistics
    unless ``config.standardize`` measures your images'.

    ``backbone``: an ``nn.Module`` mapping ``(B, 3, H, W)`` images to ``(B, D)`` features (its ``feature_dim``
    or timm's ``num_features`` attribute, when it has one, must agree with one dry forward pass), trained in
    place; backbone.safetensors then names it ``custom:<module.Class>`` and
    ``load_backbone(run, module=YourModule())`` loads it. Or a name, as ``config.backbone`` takes it:
    ``"timm:<model>"`` builds that timm model (``num_classes=0``; needs ``pip install 'simclr-kit[timm]'``), which
    ``load_backbone(run)`` rebuilds.

    ``config.resume``: continue that run directory. The config must train as the run's config.yaml does
    (build it with ``replace(RunDir(run).read_config(), resume=run)``, or keep the one that started the run);
    a change, a Dataset of another class or another backbone among them, is refused unless
    ``resume_with_changes`` (then it is recorded in the run, as ``--resume-with-changes`` does). A run that
    trained on a Python Dataset or backbone resumes from here only (``simclr pretrain --resume`` refuses it):
    pass them again.

    ``callbacks``, ``loggers``: Lightning callbacks and loggers of your own, given to the run's Trainer after
    simclr's (the loggers receive the per-step metrics every ``config.log_every_steps`` steps, as
    ``config.logger``'s tracker does). ``trainer_kwargs``: further ``lightning.Trainer`` options
    (``gradient_clip_val``, ``profiler``, ``max_time``, ...); one that simclr sets from the config (the
    device, precision, step budget, run directory, ...) is refused, naming the setting to use instead
    (docs/API.md lists them). The module they see is :class:`simclr.SimCLRModule`.

    For example (docs/API.md has more)::

        images = torch.randint(0, 256, (1024, 3, 32, 32), dtype=torch.uint8)  # or a Dataset of PIL images
        result = pretrain(PretrainConfig(epochs=10, out="runs/mine"), dataset=TensorDataset(images, labels),
                          backbone="timm:resnet18")
    """
    if isinstance(backbone, str):
        config, backbone = replace(config, backbone=backbone), None
    config.validate()
    changes: Changes = {}
    if config.resume:
        config, changes = settle_resume(
            with_python_inputs(config, dataset, backbone),
            RunDir(Path(config.resume)).read_config(),
            allowed=resume_with_changes,
            switch="resume_with_changes=True",
        )
    return run_pretraining(
        config,
        quiet=quiet,
        extra_callbacks=callbacks,
        resumed_changes=changes,
        dataset=dataset,
        backbone=backbone,
        extra_loggers=loggers,
        trainer_kwargs=trainer_kwargs,
    )
