"""Cost of a gradient-penalty training step (Foster et al. 2020) against a plain SimCLR step, and of the
memory format under the penalty, side by side in one run.

One step = views of a Spirograph batch, ResNet-18 (CIFAR stem) forward on both views, NT-Xent, and for the
penalty rows the penalty's double backward, then ``backward``; the precision is the one pretraining picks
for the device. Rows interleave over rounds so load on a shared machine hits all of them alike; the
median step time per row is reported, and the ratios are what to compare.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from simclr.hardware import autocast_dtype_for
from simclr.losses.invariance import gradient_penalty
from simclr.losses.ntxent import NTXentLoss
from simclr.models.backbones import build_backbone, resolve_stem
from simclr.views.spirograph import SpirographViews, sample_generative


def step_seconds(
    net: torch.nn.Module,
    views: SpirographViews,
    batch: int,
    *,
    penalty: bool,
    channels_last: bool,
    device: torch.device,
    seed: int,
) -> float:
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    net.to(memory_format=fmt)  # type: ignore[call-overload]
    gen = torch.Generator().manual_seed(seed)
    rendered, leaf = views.views_with_grad(sample_generative(batch, gen, device=device), gen)
    inputs = torch.cat(rendered).contiguous(memory_format=fmt)
    dtype = autocast_dtype_for(device)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
        features = net(inputs)
        loss = NTXentLoss(temperature=0.5)(*torch.nn.functional.normalize(features.float(), dim=1).chunk(2))
        if penalty:
            redraws = views.redraw_invariance_params(batch, 100, gen, device)
            loss = loss + 0.01 * gradient_penalty(features[:batch], leaf, redraws, upper_limit=1000.0, generator=gen)
    net.zero_grad(set_to_none=True)
    loss.backward()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    net, _ = build_backbone("resnet18", resolve_stem("cifar", 32))
    net.to(device)
    views = SpirographViews(2)
    rows = {("plain", True): [], ("penalty", True): [], ("penalty", False): [], ("plain", False): []}
    for round_ in range(args.rounds + 1):  # round 0 warms up
        for (kind, channels_last), times in rows.items():
            seconds = step_seconds(
                net,
                views,
                args.batch_size,
                penalty=kind == "penalty",
                channels_last=channels_last,
                device=device,
                seed=round_,
            )
            if round_ > 0:
                times.append(seconds)
    median = {key: statistics.median(times) for key, times in rows.items()}
    print(
        f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, {device}, "
        f"precision {autocast_dtype_for(device)}, batch {args.batch_size}, median of {args.rounds} rounds"
    )
    print("| step | memory format | s/step |\n|---|---|---|")
    for (kind, channels_last), seconds in median.items():
        print(f"| {kind} | {'channels_last' if channels_last else 'contiguous'} | {seconds:.3f} |")
    print(
        f"penalty / plain (channels_last): {median[('penalty', True)] / median[('plain', True)]:.2f}; "
        f"penalty / plain (contiguous): {median[('penalty', False)] / median[('plain', False)]:.2f}; "
        f"penalty channels_last / contiguous: {median[('penalty', True)] / median[('penalty', False)]:.2f}"
    )


if __name__ == "__main__":
    main()
