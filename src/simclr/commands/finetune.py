"""``simclr finetune``: fine-tune the run's backbone with a classification head on a label subset.

The training flags are shared with ``simclr supervised`` (:func:`add_training_arguments`).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from simclr.commands.common import add_run_arguments, positive_int, session_from_args, show_progress

if TYPE_CHECKING:  # the evaluation modules import torch; the CLI imports them only when run
    from simclr.evaluation.finetune import TrainConfig
    from simclr.evaluation.heads import HeadSpec


def add_training_arguments(parser: argparse.ArgumentParser, *, backbone_lr_note: str) -> None:
    """Label subset, head, optimiser and early-stopping flags of the training loop."""
    subset = parser.add_mutually_exclusive_group()
    subset.add_argument(
        "--label-fraction",
        type=float,
        default=None,
        metavar="F",
        help="stratified fraction of the training labels to use, in (0, 1] (default: all)",
    )
    subset.add_argument(
        "--labels-per-class",
        type=positive_int,
        default=None,
        metavar="N",
        help="use N labelled images per class (all of a smaller class)",
    )
    parser.add_argument(
        "--freeze-backbone",
        action="store_true",
        help="train only the head; the backbone stays in eval mode with fixed weights",
    )
    parser.add_argument(
        "--head",
        choices=("linear", "mlp"),
        default="mlp",
        help="mlp: Linear-BN-ReLU-Dropout-Linear (default); linear: one Linear layer",
    )
    parser.add_argument("--hidden-dim", type=positive_int, default=512, help="hidden units of the mlp head")
    parser.add_argument("--dropout", type=float, default=0.5, help="dropout of the mlp head")
    parser.add_argument("--epochs", type=positive_int, default=20, help="most epochs (early stopping may end sooner)")
    parser.add_argument(
        "--optimizer", choices=("adam", "sgd"), default="adam", help="adam (default) or sgd with momentum 0.9"
    )
    parser.add_argument(
        "--lr", type=float, default=None, help="peak learning rate of the head (default: adam 1e-3, sgd 0.1)"
    )
    parser.add_argument(
        "--backbone-lr-scale",
        type=float,
        default=None,
        metavar="S",
        help=f"backbone learning rate = S x --lr ({backbone_lr_note})",
    )
    parser.add_argument("--weight-decay", type=float, default=1e-4, help="weight decay (L2 in Adam)")
    parser.add_argument("--nesterov", action="store_true", help="--optimizer sgd: Nesterov momentum")
    parser.add_argument("--train-batch-size", type=positive_int, default=256, help="images per training step")
    parser.add_argument(
        "--val-fraction",
        type=float,
        default=0.1,
        help="stratified part of the labelled images held out for early stopping (0: none, last epoch)",
    )
    parser.add_argument(
        "--patience", type=int, default=3, help="epochs without validation improvement before stopping (0: never)"
    )
    parser.add_argument(
        "--min-delta", type=float, default=0.01, help="smallest validation-loss decrease that counts as improvement"
    )
    parser.add_argument(
        "--crop-min-scale", type=float, default=0.08, help="smallest crop area of the training augmentation"
    )


def train_config_from_args(args: argparse.Namespace, backbone_lr_scale: float) -> TrainConfig:
    from simclr.evaluation.finetune import TrainConfig

    return TrainConfig(
        epochs=args.epochs,
        batch_size=args.train_batch_size,
        optimizer=args.optimizer,
        lr=args.lr,
        backbone_lr_scale=backbone_lr_scale if args.backbone_lr_scale is None else args.backbone_lr_scale,
        weight_decay=args.weight_decay,
        nesterov=args.nesterov,
        patience=args.patience,
        min_delta=args.min_delta,
        eval_batch_size=args.batch_size,
        seed=args.seed,
    )


def head_from_args(args: argparse.Namespace) -> HeadSpec:
    from simclr.evaluation.heads import HeadSpec

    return HeadSpec(kind=args.head, hidden_dim=args.hidden_dim, dropout=args.dropout)


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "finetune", help="fine-tune the backbone with a classification head on (a subset of) the labels"
    )
    add_run_arguments(parser)
    add_training_arguments(parser, backbone_lr_note="default 0.1; ignored with --freeze-backbone")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from simclr.evaluation.finetune import run_finetune
    from simclr.evaluation.results import headline

    show_progress()
    session = session_from_args(args)
    entry = run_finetune(
        session,
        label_fraction=args.label_fraction,
        labels_per_class=args.labels_per_class,
        head=head_from_args(args),
        freeze_backbone=args.freeze_backbone,
        val_fraction=args.val_fraction,
        crop_scale=(args.crop_min_scale, 1.0),
        config=train_config_from_args(args, 0.1),
    )
    path = session.record("finetune", entry)
    print(headline("finetune", entry))
    print(f"results: {path}")
    return 0
