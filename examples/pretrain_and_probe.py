"""A session end to end: pretrain a run, load its backbone, extract features, probe them.

``pretrain(config)`` is ``simclr pretrain`` from Python: it writes a run directory (config.yaml,
metrics.csv, backbone.safetensors, ...). The sizes here are tiny so the script ends in seconds on a CPU;
a real run sets e.g. ``dataset="cifar10", data_dir="data/cifar10", epochs=200``.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import torch

from simclr import PretrainConfig, extract_features, knn_accuracy, linear_probe, load_backbone, pretrain


def labelled_images(count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Stand-in for your labelled data: uint8 images whose class is their brightest colour channel."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 3, (count,), generator=generator)
    images = torch.randint(0, 96, (count, 3, 16, 16), generator=generator, dtype=torch.uint8)
    images[torch.arange(count), labels] += 128
    return images, labels


def main(out: Path) -> dict[str, float]:
    # 1. pretrain: the procedural Spirograph set needs no download
    config = PretrainConfig(
        dataset="spirograph",
        train_size=32,
        test_size=16,
        image_size=16,
        batch_size=16,
        epochs=1,
        precision="32",
        knn_every_epochs=0,
        workers=0,
        out=str(out / "run"),
    )
    result = pretrain(config)
    print(f"run directory: {result.run_dir} (step {result.global_step}, loss {result.final_loss:.3f})")

    # 2. load the backbone: the file's metadata names the architecture, stem, image size and normalisation
    backbone = load_backbone(result.run_dir)
    meta = backbone.metadata
    print(f"{meta.backbone} ({meta.stem} stem), {backbone.feature_dim} features, trained at {meta.image_size}px")

    # 3. features of your own uint8 images, normalised as in training
    train_images, train_labels = labelled_images(96, seed=1)
    test_images, test_labels = labelled_images(48, seed=2)
    mean, std = meta.mean or (0.5, 0.5, 0.5), meta.std or (0.5, 0.5, 0.5)
    train_features = extract_features(backbone.module, train_images, mean, std, batch_size=48)
    test_features = extract_features(backbone.module, test_images, mean, std, batch_size=48)

    # 4. probe them: a linear classifier (L-BFGS, L2 chosen on a validation split) and weighted kNN
    probe = linear_probe(train_features, train_labels, test_features, test_labels, num_classes=3, grid=(1e-4, 1e-2))
    knn = knn_accuracy(train_features, train_labels, test_features, test_labels, num_classes=3, k=10)
    scores = {"linear_top1": float(probe.metrics["top1"]), "knn_top1": knn}
    print(scores)
    return scores


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as folder:
        main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(folder))
