"""``simclr train-ae``: train the pixel autoencoder whose embedding layer the ``ae`` projection head reuses.

Experiment 1 of SimCLR-AE (Schliebitz et al., arXiv:2408.14514); the run directory it prints is what
``simclr pretrain --head ae --ae-checkpoint`` takes.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from simclr.autoencoder_config import AutoencoderConfig
from simclr.commands.common import Quiet, Recipe, add_command
from simclr.settings import add_settings_flags, overrides_from_args, settings_from_args

EXAMPLES = (
    "simclr train-ae --dataset cifar10 --data-dir data/cifar10 --latent-dim 512 --epochs 20",
    "simclr pretrain --dataset cifar10 --data-dir data/cifar10 --head ae --ae-checkpoint runs/ae-cifar10-512-...",
)


@dataclass
class TrainAutoencoderCommand(Quiet, Recipe):
    """What ``simclr train-ae`` does with its config, beside the config itself (:class:`AutoencoderConfig`)."""


def register(commands: Any) -> None:
    parser = add_command(commands, "train-ae", "train the MLP autoencoder for the ae projection head", EXAMPLES)
    add_settings_flags(parser, TrainAutoencoderCommand)
    add_settings_flags(parser, AutoencoderConfig, overrides_only=True)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from simclr.settings import build_settings, read_yaml
    from simclr.training.autoencoder import run_ae_training

    command = settings_from_args(TrainAutoencoderCommand, args)
    file_values = read_yaml(command.config) if command.config else {}
    config = build_settings(AutoencoderConfig, file_values, overrides_from_args(AutoencoderConfig, args))
    result = run_ae_training(config, quiet=command.quiet)
    print(f"run directory: {result.run_dir}  (val_loss {result.val_loss:.5f})")
    return 0
