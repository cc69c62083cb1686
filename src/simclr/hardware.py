"""Choices that depend on the machine: numeric precision and accelerator (used by training and evaluation)."""

from __future__ import annotations

from pathlib import Path

import torch

from simclr.errors import UserError


def cpu_supports_bf16() -> bool:
    """True when the CPU has native bf16 instructions (AVX-512 BF16 or AMX).

    Without them bf16 autocast on CPU is emulated and slower than fp32, so it is not chosen by default.
    """
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def uses_gpu(accelerator: str) -> bool:
    if accelerator in ("gpu", "cuda"):
        if not torch.cuda.is_available():
            raise UserError("--accelerator gpu was requested but no CUDA GPU is visible; use --accelerator cpu")
        return True
    if accelerator == "auto":
        return torch.cuda.is_available()
    if accelerator == "cpu":
        return False
    raise UserError(f"unknown accelerator {accelerator!r}; use auto, cpu or gpu")


def resolve_precision(precision: str, gpu: bool) -> str:
    """``auto`` becomes bf16-mixed where the hardware computes in bf16 natively, else 32.

    bf16 keeps fp32's exponent range, so NT-Xent at low temperature does not overflow as it can in fp16
    (lightly issue #1633); the loss itself is computed in fp32 regardless.
    """
    if precision != "auto":
        if precision == "16-mixed" and not gpu:
            raise UserError("16-mixed precision needs a GPU; use --precision bf16-mixed or 32 on a CPU")
        return precision
    if gpu:
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "32"
    return "bf16-mixed" if cpu_supports_bf16() else "32"


def use_channels_last(requested: bool, gpu: bool, gradient_penalty: bool) -> bool:
    """The memory format for training: channels_last as requested, except for the gradient penalty on
    the CPU, where the penalty's double backward (BatchNorm's in particular) runs slower in channels_last
    than in the default format (``benchmarks/gradient_penalty_step.py``, BENCHMARKS.md)."""
    return requested and (gpu or not gradient_penalty)


def pick_device(accelerator: str = "auto") -> torch.device:
    """The device evaluation runs on: the GPU when one is asked for or available, else the CPU."""
    return torch.device("cuda") if uses_gpu(accelerator) else torch.device("cpu")


def autocast_dtype_for(device: torch.device) -> torch.dtype | None:
    """bf16 where the device computes it natively (features only; fits and losses stay fp32), else None."""
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if cpu_supports_bf16() else None
