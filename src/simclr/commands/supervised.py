"""``simclr supervised``: seed 004's supervised baseline with the run's architecture, trained on labels
from random initialisation (``--weights none``) or from torchvision's ImageNet weights."""

from __future__ import annotations

import argparse
from typing import Any

from simclr.commands.common import add_run_arguments, positive_int, session_from_args, show_progress
from simclr.commands.finetune import add_training_arguments, head_from_args, train_config_from_args


def register(commands: Any) -> None:
    parser = commands.add_parser("supervised", help="supervised baseline: the run's architecture trained on the labels")
    add_run_arguments(parser)
    parser.add_argument(
        "--weights",
        choices=("none", "imagenet"),
        default="none",
        help="none: random initialisation, the run's stem (default); imagenet: torchvision's ImageNet weights",
    )
    parser.add_argument(
        "--image-size",
        type=positive_int,
        default=None,
        metavar="N",
        help="train and test at N px, resized on the device (default: the run's size; 224 with --weights imagenet)",
    )
    add_training_arguments(parser, backbone_lr_note="default 1.0 with --weights none, 0.1 with --weights imagenet")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from simclr.evaluation.results import headline
    from simclr.evaluation.supervised import run_supervised

    show_progress()
    session = session_from_args(args)
    key, entry = run_supervised(
        session,
        weights=args.weights,
        image_size=args.image_size,
        label_fraction=args.label_fraction,
        labels_per_class=args.labels_per_class,
        head=head_from_args(args),
        freeze_backbone=args.freeze_backbone,
        val_fraction=args.val_fraction,
        crop_scale=(args.crop_min_scale, 1.0),
        config=train_config_from_args(args, 1.0 if args.weights == "none" else 0.1),
    )
    path = session.record(key, entry)
    print(headline(key, entry))
    print(f"results: {path}")
    return 0
