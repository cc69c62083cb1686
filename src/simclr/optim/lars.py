"""LARS: layer-wise adaptive rate scaling (You et al. 2017, arXiv:1708.03888).

SimCLR trains with batches of 4096 and more (Chen et al. 2020, arXiv:2002.05709, Section 2 and
Appendix B.1). Plain SGD with a linearly scaled learning rate is unstable there because the ratio
between a layer's weight norm and its gradient norm differs by orders of magnitude across layers.
LARS rescales each layer's step so that its size is a fixed fraction (the trust coefficient) of the
layer's weight norm. Following SimCLR, batch-norm parameters and biases are excluded from both the
weight decay and the adaptation (a per-group ``lars_exclude`` flag here).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor

from simclr.errors import UserError

__all__ = ["LARS"]


class LARS(torch.optim.Optimizer):
    r"""SGD with momentum and layer-wise trust-ratio scaling.

    For every parameter ``p`` with gradient ``g`` in a group with ``lars_exclude=False``::

        g      <- g + weight_decay * p
        ratio  =  trust_coefficient * ||p|| / (||g|| + eps)   if ||p|| > 0 and ||g|| > 0, else 1
        a      =  ratio * g                                   (the adapted gradient)
        v      <- momentum * v + a                            (v starts at 0, so v_1 = a_1)
        p      <- p - lr * v                                  (nesterov: p <- p - lr * (a + momentum * v))

    ``||.||`` is the Frobenius norm of the whole tensor (one "layer"), and ``||g||`` is taken *after*
    adding the weight decay term, as in SimCLR's LARS (You et al. use ``||g|| + wd * ||p||``, an upper
    bound of the same quantity). For groups with ``lars_exclude=True`` (batch norm and biases) the
    first three lines are skipped: no weight decay, ``a = g``.

    The learning rate multiplies the momentum buffer rather than entering it (the torch SGD
    convention). SimCLR's TensorFlow LARS accumulates ``lr * ratio * g`` in the buffer instead; the two
    are identical while the learning rate is constant and differ only in how a schedule change is
    phased in, which keeps ``v`` independent of the schedule (so it can be resumed with another one).

    Args:
        params: parameters or parameter groups; a group may set ``lars_exclude``, ``weight_decay``,
            ``momentum``, ``trust_coefficient``, ``eps``, ``nesterov`` and ``lr``.
        lr: learning rate (already scaled for the batch size, e.g. 0.3 * B / 256 in SimCLR).
        momentum: momentum factor (0.9 in SimCLR).
        weight_decay: L2 penalty on non-excluded parameters (1e-6 in SimCLR).
        trust_coefficient: eta in You et al.; 1e-3 in SimCLR.
        eps: added to the gradient norm to avoid dividing by a tiny number.
        nesterov: use Nesterov momentum.

    Example:
        >>> import torch
        >>> layer = torch.nn.Linear(4, 2)
        >>> groups = [
        ...     {"params": [layer.weight]},
        ...     {"params": [layer.bias], "weight_decay": 0.0, "lars_exclude": True},
        ... ]
        >>> optimizer = LARS(groups, lr=0.3, weight_decay=1e-6)
        >>> layer(torch.randn(8, 4)).pow(2).mean().backward()
        >>> optimizer.step()
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        trust_coefficient: float = 1e-3,
        eps: float = 1e-8,
        nesterov: bool = False,
    ) -> None:
        if lr < 0:
            raise UserError(f"LARS learning rate must be >= 0, got {lr}; pass a non-negative --lr")
        if momentum < 0:
            raise UserError(f"LARS momentum must be >= 0, got {momentum}; use e.g. 0.9")
        if weight_decay < 0:
            raise UserError(f"LARS weight decay must be >= 0, got {weight_decay}; use e.g. 1e-6")
        if trust_coefficient <= 0:
            raise UserError(f"LARS trust coefficient must be > 0, got {trust_coefficient}; use e.g. 1e-3")
        if eps < 0:
            raise UserError(f"LARS eps must be >= 0, got {eps}; use e.g. 1e-8")
        if nesterov and momentum == 0:
            raise UserError("LARS with nesterov=True needs momentum > 0; set a momentum or disable nesterov")
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "weight_decay": weight_decay,
            "trust_coefficient": trust_coefficient,
            "eps": eps,
            "nesterov": nesterov,
            "lars_exclude": False,
        }
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        """Perform one update; ``closure`` re-evaluates the model and returns the loss (optional)."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            exclude = bool(group["lars_exclude"])
            weight_decay = group["weight_decay"]
            momentum = group["momentum"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("LARS does not support sparse gradients")
                grad = p.grad
                if not exclude:
                    if weight_decay != 0:
                        grad = grad.add(p, alpha=weight_decay)
                    param_norm = torch.linalg.vector_norm(p)
                    grad_norm = torch.linalg.vector_norm(grad)
                    ratio = torch.where(
                        (param_norm > 0) & (grad_norm > 0),
                        group["trust_coefficient"] * param_norm / (grad_norm + group["eps"]),
                        torch.ones_like(param_norm),
                    )
                    grad = grad * ratio
                if momentum != 0:
                    state = self.state[p]
                    buffer = state.get("momentum_buffer")
                    if buffer is None:
                        buffer = grad.detach().clone()
                        state["momentum_buffer"] = buffer
                    else:
                        buffer.mul_(momentum).add_(grad)
                    grad = grad.add(buffer, alpha=momentum) if group["nesterov"] else buffer
                p.add_(grad, alpha=-group["lr"])
        return loss
