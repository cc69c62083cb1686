"""Classification heads on a backbone, and the backbone + head classifier that evaluation trains.

The projection head of pretraining is thrown away (Chen et al. 2020, arXiv:2002.05709, sec. 4.2);
evaluation puts a new classification head on the backbone output instead:

* ``linear``: one Linear layer, optionally after a BatchNorm without affine parameters that
  standardises the features with their average batch statistics (the linear probe of MAE, He et al. 2022,
  arXiv:2111.06377, sec. A.2: it is still a linear classifier at test time, but SGD no longer depends
  on the scale of the frozen features);
* ``mlp``: Linear -> BatchNorm -> ReLU -> Dropout -> Linear, the BN / activation / dropout block of
  SimCLR-Lightning's fine-tuning head and the MLP head of the CIFAR-10 ResNet-18 study (which uses 512
  hidden units on ImageNet features; sources: docs/SOURCES.md), with one hidden layer of ``hidden_dim``
  units (default 512).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from simclr.errors import UserError
from simclr.evaluation.options import FinetuneOptions

__all__ = ["CLASSIFIER_HEADS", "Classifier", "HeadSpec", "StandardizedLinear", "build_classifier_head"]

CLASSIFIER_HEADS: tuple[str, ...] = ("linear", "mlp")
DEFAULT_HIDDEN_DIM = 512


def build_classifier_head(
    kind: str,
    in_dim: int,
    num_classes: int,
    *,
    hidden_dim: int = DEFAULT_HIDDEN_DIM,
    dropout: float = 0.5,
    standardize: bool = False,
    hidden_dims: Sequence[int] = (),
) -> nn.Module:
    """A head mapping ``(B, in_dim)`` features to ``(B, num_classes)`` logits.

    ``hidden_dims`` gives the ``mlp`` head one Linear-BN-ReLU-Dropout block per width (the rittik9/SimCLR notebooks'
    ``256,128,64``); empty, it has one block of ``hidden_dim``.

    ``standardize`` puts ``BatchNorm1d(in_dim, affine=False)`` in front (``linear`` only; the
    ``mlp`` head normalises after its first layer anyway).

    >>> build_classifier_head("mlp", 512, 10)(torch.zeros(4, 512)).shape
    torch.Size([4, 10])
    """
    if num_classes < 2:
        raise UserError(f"a classifier needs at least 2 classes, got {num_classes}; use a labelled dataset")
    if not 0.0 <= dropout < 1.0:
        raise UserError(f"--dropout must be in [0, 1), got {dropout}")
    if kind == "linear":
        linear = nn.Linear(in_dim, num_classes)
        if not standardize:
            return linear
        # momentum=None: running statistics are the plain average over all training batches, exact for
        # the stationary features of a frozen backbone even after a handful of steps.
        return nn.Sequential(nn.BatchNorm1d(in_dim, affine=False, momentum=None), linear)
    if kind == "mlp":
        widths = tuple(hidden_dims) or (hidden_dim,)
        if min(widths) < 1:
            raise UserError(f"hidden widths of the mlp head must be >= 1, got {list(widths)}")
        layers: list[nn.Module] = []
        for width_in, width in zip((in_dim, *widths), widths, strict=False):
            layers += [nn.Linear(width_in, width, bias=False), nn.BatchNorm1d(width), nn.ReLU(inplace=True)]
            layers.append(nn.Dropout(dropout))
        return nn.Sequential(*layers, nn.Linear(widths[-1], num_classes))
    raise UserError(f"unknown head {kind!r}; use one of {', '.join(CLASSIFIER_HEADS)}")


class StandardizedLinear(nn.Module):
    """``((x - mean) / std) @ weight.T + bias``: the L-BFGS linear probe
    (:class:`simclr.evaluation.protocols.lbfgs.LinearFit`) as a module, its feature standardisation kept as buffers
    so a saved probe scores raw backbone features.

    >>> StandardizedLinear(512, 10)(torch.zeros(4, 512)).shape
    torch.Size([4, 10])
    """

    mean: Tensor
    std: Tensor

    def __init__(self, in_dim: int, num_classes: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(in_dim))
        self.register_buffer("std", torch.ones(in_dim))
        self.weight = nn.Parameter(torch.zeros(num_classes, in_dim))
        self.bias = nn.Parameter(torch.zeros(num_classes))

    @classmethod
    def of(cls, weight: Tensor, bias: Tensor, mean: Tensor, std: Tensor) -> StandardizedLinear:
        head = cls(weight.shape[1], weight.shape[0])
        with torch.no_grad():
            for target, value in ((head.weight, weight), (head.bias, bias), (head.mean, mean), (head.std, std)):
                target.copy_(value)
        return head

    def forward(self, features: Tensor) -> Tensor:
        x = (features.float() - self.mean) / self.std
        return x @ self.weight.T + self.bias


class Classifier(nn.Module):
    """``head(backbone(x))``; with ``freeze_backbone`` the backbone is a fixed feature extractor.

    A frozen backbone has no gradients and stays in eval mode even while the classifier trains, so
    neither its weights nor its BatchNorm statistics can move (the CIFAR-10 ResNet-18 study leaves BN in
    train mode, which quietly changes the "frozen" network); its features are computed under ``no_grad``,
    which also saves the activation memory of the backward pass.
    """

    def __init__(self, backbone: nn.Module, head: nn.Module, *, freeze_backbone: bool) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.freeze_backbone = freeze_backbone
        backbone.requires_grad_(not freeze_backbone)
        if freeze_backbone:
            backbone.eval()

    def train(self, mode: bool = True) -> Classifier:
        super().train(mode)
        if self.freeze_backbone:
            self.backbone.eval()
        return self

    def forward(self, images: Tensor) -> Tensor:
        if self.freeze_backbone:
            with torch.no_grad():
                features = self.backbone(images)
        else:
            features = self.backbone(images)
        return self.head(features.flatten(1))

    def trainable_groups(self) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
        """``(head parameters, backbone parameters)``; the second is empty for a frozen backbone."""
        backbone = [] if self.freeze_backbone else [p for p in self.backbone.parameters() if p.requires_grad]
        return list(self.head.parameters()), backbone


@dataclass(frozen=True)
class HeadSpec:
    """What head to put on the backbone; :meth:`build` makes a fresh one, :meth:`describe` names it."""

    kind: str = "mlp"
    hidden_dim: int = DEFAULT_HIDDEN_DIM
    dropout: float = 0.5
    standardize: bool = False
    hidden_dims: tuple[int, ...] = ()

    @classmethod
    def of(cls, options: FinetuneOptions) -> HeadSpec:
        """The head that ``simclr finetune`` (or ``supervised``) asks for with ``--head`` and its widths."""
        return cls(
            kind=options.head,
            hidden_dim=options.hidden_dim,
            dropout=options.dropout,
            hidden_dims=tuple(options.head_dims or ()),
        )

    def build(self, in_dim: int, num_classes: int) -> nn.Module:
        return build_classifier_head(
            self.kind,
            in_dim,
            num_classes,
            hidden_dim=self.hidden_dim,
            dropout=self.dropout,
            standardize=self.standardize,
            hidden_dims=self.hidden_dims,
        )

    def describe(self, in_dim: int, num_classes: int) -> str:
        if self.kind == "linear":
            return ("BatchNorm1d(affine=False) -> " if self.standardize else "") + f"Linear({in_dim}, {num_classes})"
        widths = self.hidden_dims or (self.hidden_dim,)
        blocks = [
            f"Linear({width_in}, {width}) -> BatchNorm1d -> ReLU -> Dropout({self.dropout:g})"
            for width_in, width in zip((in_dim, *widths), widths, strict=False)
        ]
        return " -> ".join([*blocks, f"Linear({widths[-1]}, {num_classes})"])
