"""Timed optimiser steps of a SimCLRModule outside Lightning, for the benchmarks that compare step settings
side by side (micro_batch.py, multicrop.py): the same loop, so their rows measure the same thing."""

from __future__ import annotations

import time

import torch

from simclr.config import PretrainConfig
from simclr.training.module import SimCLRModule


def time_steps(config: PretrainConfig, steps: int, device: torch.device) -> tuple[list[float], float]:
    """Seconds of each of ``steps + 1`` SGD steps on one random uint8 batch of ``config.batch_size`` 32 px
    images (the first includes warm-up: leave it out of medians), and the last step's loss."""
    module = SimCLRModule.from_config(config, image_size=32, steps_per_epoch=100).to(device)
    optimizer = torch.optim.SGD(module.parameters(), lr=0.01, momentum=0.9)
    images = torch.randint(0, 256, (config.batch_size, 3, 32, 32), dtype=torch.uint8, device=device)
    seconds, loss = [], torch.tensor(float("nan"))
    for step in range(steps + 1):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss = module.training_step(images, step)
        loss.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - start)
    return seconds, float(loss)
