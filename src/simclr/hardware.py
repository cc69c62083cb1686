"""Choices that depend on the machine: numeric precision and accelerator (used by training and evaluation), and
how many loader or decoder processes it can run."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch

from simclr.errors import UserError

log = logging.getLogger("simclr")
_capped_worker_counts: set[int] = set()  # the --workers values already said to be capped, said once each


def usable_cpus() -> int:
    """The CPUs this process may run on: its affinity mask (taskset, a cgroup's cpuset, a SLURM allocation),
    else every CPU of the machine."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # no affinity mask on this system
        return os.cpu_count() or 1


def worker_processes(requested: int) -> int:
    """How many loader or decoder processes to start for ``--workers requested``: at most :func:`usable_cpus`.
    More processes than CPUs only compete for them, and thousands (``--workers 10000``) exhaust the process
    limit before the first batch; a capped value is said once, in one line, and the run goes on."""
    cpus = usable_cpus()
    if requested <= cpus:
        return requested
    if requested not in _capped_worker_counts:
        _capped_worker_counts.add(requested)
        log.warning("--workers %d is more than the %d CPUs this process may use; starting %d", requested, cpus, cpus)
    return cpus


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


# The share of the GPU's free memory a uint8 training store may take when it moves there (CIFAR-10's 150 MB
# on any GPU; an in-memory ImageNet-size folder stays on the host): the rest is left for the model,
# activations at large batches and the kNN monitor's features.
DEVICE_STORE_FRACTION = 0.25


def store_fits_on_device(store_bytes: int, free_bytes: int, fraction: float = DEVICE_STORE_FRACTION) -> bool:
    """Whether a store of ``store_bytes`` may live on a device with ``free_bytes`` free: at most ``fraction``
    of the free memory.

    >>> store_fits_on_device(150 * 2**20, 80 * 2**30)
    True
    >>> store_fits_on_device(30 * 2**30, 80 * 2**30)
    False
    """
    return store_bytes <= fraction * free_bytes


def free_device_memory(device: torch.device) -> int:
    """Free bytes on a CUDA device (0 for any other device: nothing is moved there)."""
    if device.type != "cuda":
        return 0
    free, _total = torch.cuda.mem_get_info(device)
    return int(free)
