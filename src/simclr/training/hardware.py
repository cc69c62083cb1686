"""Re-export of :mod:`simclr.hardware` (precision and accelerator choices shared with evaluation)."""

from simclr.hardware import cpu_supports_bf16, resolve_precision, use_channels_last, uses_gpu

__all__ = ["cpu_supports_bf16", "resolve_precision", "use_channels_last", "uses_gpu"]
