"""Projection heads g(.) that map backbone features to the space where NT-Xent is applied.

SimCLR (Chen et al. 2020, arXiv:2002.05709, Sec. 4.2) shows that a non-linear head (Linear-BN-ReLU-Linear)
improves the representation *before* the head by more than 10 points over no head; the representation
used downstream is the backbone output, the head is thrown away.
"""

from __future__ import annotations

from torch import nn

from simclr.errors import UserError

HEAD_NAMES: tuple[str, ...] = ("mlp", "linear", "identity")


def build_head(
    kind: str,
    in_dim: int,
    out_dim: int = 128,
    hidden_dim: int | None = None,
    num_layers: int = 2,
    batch_norm: bool = True,
) -> tuple[nn.Module, int]:
    """Build a projection head and return it with its output size.

    ``mlp`` has ``num_layers`` linear layers (>= 2); every layer but the last is followed by
    BatchNorm (if ``batch_norm``) and ReLU; hidden width defaults to ``in_dim`` as in the paper.
    ``linear`` is one Linear layer, ``identity`` applies NT-Xent to the backbone features directly.

    >>> head, dim = build_head("mlp", 512)
    >>> dim
    128
    """
    if kind == "identity":
        return nn.Identity(), in_dim
    if out_dim < 1:
        raise UserError(f"head output size must be >= 1, got {out_dim}; fix --head-out-dim")
    if kind == "linear":
        return nn.Linear(in_dim, out_dim), out_dim
    if kind != "mlp":
        raise UserError(f"unknown head {kind!r}; use one of {', '.join(HEAD_NAMES)}")
    if num_layers < 2:
        raise UserError(f"an mlp head needs >= 2 layers, got {num_layers}; fix --head-layers or use --head linear")
    hidden = hidden_dim or in_dim
    layers: list[nn.Module] = []
    width = in_dim
    for _ in range(num_layers - 1):
        layers.append(nn.Linear(width, hidden, bias=not batch_norm))
        if batch_norm:
            layers.append(nn.BatchNorm1d(hidden))
        layers.append(nn.ReLU(inplace=True))
        width = hidden
    layers.append(nn.Linear(width, out_dim))
    return nn.Sequential(*layers), out_dim
