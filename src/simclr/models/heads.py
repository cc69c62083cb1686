"""Projection heads g(.) that map backbone features to the space where NT-Xent is applied.

SimCLR (Chen et al. 2020, arXiv:2002.05709, Sec. 4.2) shows that a non-linear head (Linear-BN-ReLU-Linear)
improves the representation *before* the head by more than 10 points over no head; the representation
used downstream is the backbone output, the head is thrown away.

The ``ae`` head (Schliebitz et al., arXiv:2408.14514, experiment 2) replaces the first layer of the 2-layer
head with the embedding layer ``Linear(512, d)`` of an MLP autoencoder trained on pixels
(:mod:`simclr.models.autoencoder`), frozen by default, followed by an activation and ``Linear(d, out)``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from torch import nn

from simclr.errors import UserError
from simclr.models.autoencoder import load_autoencoder

HEAD_NAMES: tuple[str, ...] = ("mlp", "linear", "identity", "ae")

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "silu": nn.SiLU,
    "gelu": nn.GELU,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "leakyrelu": nn.LeakyReLU,
    "elu": nn.ELU,
    "mish": nn.Mish,
    "softplus": nn.Softplus,
    "identity": nn.Identity,
}


def build_activation(name: str) -> nn.Module:
    """The activation called ``name``, case-insensitive (``ReLU``, ``leaky_relu`` and ``LeakyReLU`` all work).

    The paper finds that sigmoid and tanh after a frozen autoencoder embedding can beat ReLU, so the
    choice is a setting rather than fixed.

    >>> build_activation("SiLU")
    SiLU()
    """
    key = name.strip().lower().replace("_", "").replace("-", "")
    if key not in ACTIVATIONS:
        raise UserError(f"unknown activation {name!r}; use one of {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[key]()


def build_ae_head(
    checkpoint: Path | str | None,
    in_dim: int,
    out_dim: int,
    activation: str = "relu",
    freeze_input: bool = True,
) -> tuple[nn.Sequential, int]:
    """``[autoencoder embedding Linear(512, d)] -> activation -> Linear(d, out_dim)`` (arXiv:2408.14514, Sec. 3).

    The first layer holds the autoencoder's weights exactly as saved; with ``freeze_input`` its parameters
    have ``requires_grad=False`` so the optimiser never sees them. As in the paper it is fed the backbone
    features, so the backbone must give as many features as the layer takes (512: resnet18, resnet34).
    """
    if checkpoint is None:
        raise UserError("--head ae needs --ae-checkpoint, the weights (or run directory) written by 'simclr train-ae'")
    act = build_activation(activation)
    embedding = load_autoencoder(checkpoint).embedding
    if embedding.in_features != in_dim:
        raise UserError(
            f"the ae head's embedding layer takes {embedding.in_features} inputs but the backbone gives {in_dim} "
            f"features; use a backbone with {embedding.in_features} features such as resnet18/resnet34, "
            "or another --head"
        )
    embedding.train()  # loaded for inference; inside the head it follows the head's mode
    embedding.requires_grad_(not freeze_input)
    return nn.Sequential(embedding, act, nn.Linear(embedding.out_features, out_dim)), out_dim


def build_head(
    kind: str,
    in_dim: int,
    out_dim: int = 128,
    hidden_dim: int | None = None,
    num_layers: int = 2,
    batch_norm: bool = True,
    *,
    ae_checkpoint: Path | str | None = None,
    freeze_input: bool = True,
    activation: str = "relu",
) -> tuple[nn.Module, int]:
    """Build a projection head and return it with its output size.

    ``mlp`` has ``num_layers`` linear layers (>= 2); every layer but the last is followed by
    BatchNorm (if ``batch_norm``) and ``activation`` (ReLU in the paper); hidden width defaults to ``in_dim``
    as in the paper.
    ``linear`` is one Linear layer, ``identity`` applies NT-Xent to the backbone features directly.
    ``ae`` is :func:`build_ae_head` over ``ae_checkpoint``, the autoencoder's file (``hidden_dim``, ``num_layers`` and
    ``batch_norm`` do not apply: its hidden width is the autoencoder's latent size).

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
    if kind == "ae":
        return build_ae_head(ae_checkpoint, in_dim, out_dim, activation=activation, freeze_input=freeze_input)
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
        layers.append(build_activation(activation))
        width = hidden
    layers.append(nn.Linear(width, out_dim))
    return nn.Sequential(*layers), out_dim
