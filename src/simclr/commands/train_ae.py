"""``simclr train-ae``: train the pixel autoencoder whose embedding layer the ``ae`` projection head reuses.

Experiment 1 of SimCLR-AE (Schliebitz et al., arXiv:2408.14514); the run directory it prints is what
``simclr pretrain --head ae --ae-checkpoint`` takes.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(commands: Any) -> None:
    parser = commands.add_parser("train-ae", help="train the MLP autoencoder for the ae projection head")
    parser.add_argument(
        "--dataset",
        required=True,
        help="spirograph | cifar10 | cifar100 | stl10 | mnist | imagenette | ...",
    )
    parser.add_argument("--data-dir", default=None, help="where the dataset is")
    parser.add_argument("--download", action="store_true", help="download a torchvision dataset that is missing")
    parser.add_argument(
        "--latent-dim",
        type=int,
        default=512,
        help="size of the embedding layer (the paper: 128, 256, 512)",
    )
    parser.add_argument("--image-size", type=int, default=None, help="square image size (default: the dataset's)")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=1e-4, help="Adam learning rate (the paper: 1e-4)")
    parser.add_argument("--weight-decay", type=float, default=0.0)
    parser.add_argument(
        "--val-fraction",
        type=float,
        default=0.1,
        help="part of the training split held out for validation",
    )
    parser.add_argument(
        "--limit-train-images",
        type=int,
        default=None,
        metavar="N",
        help="random subset of the training split",
    )
    parser.add_argument(
        "--train-size",
        type=int,
        default=None,
        help="spirograph: number of generated training images",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2, help="threads used to decode images")
    parser.add_argument("--accelerator", default="auto", choices=("auto", "cpu", "gpu"))
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="run directory (default: runs/ae-DATASET-LATENT-TIMESTAMP)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress output on the terminal")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from simclr.training.autoencoder import AETrainConfig, run_ae_training

    config = AETrainConfig(
        dataset=args.dataset,
        data_dir=args.data_dir,
        download=args.download,
        latent_dim=args.latent_dim,
        image_size=args.image_size,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        val_fraction=args.val_fraction,
        limit_train_images=args.limit_train_images,
        train_size=args.train_size,
        seed=args.seed,
        workers=args.workers,
        accelerator=args.accelerator,
        out=str(args.out) if args.out is not None else None,
    )
    result = run_ae_training(config, quiet=args.quiet)
    print(f"run directory: {result.run_dir}  (val_loss {result.val_loss:.5f})")
    return 0
