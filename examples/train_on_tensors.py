"""Train SimCLR for a few steps on your own tensors with the building blocks, in a plain PyTorch loop.

Run it as ``python examples/train_on_tensors.py``; tiny sizes (16px, 8 images a step) keep it to seconds on
a CPU. Swap the random tensors for your images (uint8 ``(N, 3, H, W)``) and the loop for your own trainer:
every piece is an ordinary module. To train your tensors by simclr's own loop instead (checkpoints, resume,
the kNN monitor, a run directory), pass them as a Dataset: ``pretrain(config, dataset=TensorDataset(images))``
(examples/pretrain_on_your_data.py).
"""

from __future__ import annotations

import torch
from torch import nn

from simclr import LARS, NTXentLoss, SimCLRViews, ViewConfig, WarmupCosineLR, build_backbone, parameter_groups


def main(steps: int = 3, batch_size: int = 8, size: int = 16) -> list[float]:
    torch.manual_seed(0)
    images = torch.randint(0, 256, (64, 3, size, size), dtype=torch.uint8)  # your images here

    # views: random crops, flips, colour jitter, grayscale of the whole batch at once, on its device
    views = SimCLRViews(ViewConfig(size=size), n_views=2)
    # network: a ResNet-18 with the small-image (CIFAR) stem, and SimCLR's 2-layer projection head
    backbone, feature_dim = build_backbone("resnet18", "cifar")
    head = nn.Sequential(nn.Linear(feature_dim, 512), nn.BatchNorm1d(512), nn.ReLU(), nn.Linear(512, 128))
    model = nn.Sequential(backbone, head)
    # loss and optimiser: NT-Xent at temperature 0.5, LARS with warmup + cosine per step
    loss_fn = NTXentLoss(temperature=0.5)
    optimizer = LARS(parameter_groups(model, weight_decay=1e-6), lr=0.3 * batch_size / 256)
    schedule = WarmupCosineLR(optimizer, total_steps=steps, warmup_steps=1)

    generator = torch.Generator().manual_seed(0)
    losses = []
    for step in range(steps):
        batch = images[torch.randint(0, len(images), (batch_size,), generator=generator)]
        first, second = views(batch, generator)
        loss = loss_fn(model(first), model(second))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
        print(f"step {step}: loss {loss.item():.4f}")
    return losses


if __name__ == "__main__":
    main()
