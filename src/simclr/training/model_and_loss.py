"""The network and the loss of a pretraining run, built from its config: the model with its initial weights
drawn from the run's seed (checked on the run's image size before any run directory exists), and the loss
(NT-Xent, with its negative queue when asked, or SupCon).
"""

from __future__ import annotations

import lightning as L
import torch
from torch import nn

from simclr.config import PretrainConfig
from simclr.errors import UserError
from simclr.losses.ntxent import NTXentLoss
from simclr.losses.supcon import SupConLoss
from simclr.model_from_config import build_model
from simclr.models.simclr_model import SimCLRModel


def build_seeded_model(
    config: PretrainConfig, image_size: int, channels_last: bool, backbone: nn.Module | None = None
) -> SimCLRModel:
    """The network with its initial weights drawn from ``config.seed`` (a ``backbone`` passed from Python keeps
    its own), in the run's memory format (and compiled when asked)."""
    L.seed_everything(config.seed, workers=False, verbose=False)
    model = build_model(config, image_size, backbone)
    if backbone is None:  # a module of one's own was tried on the image size already (measure_feature_dim)
        check_backbone_takes(model.backbone, config.backbone, image_size)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    if config.compile:
        # in place (nn.Module.compile): the state dict keeps its names, so checkpoints and backbones are the
        # same with and without --compile; dynamic=False as every batch has one shape (drop_last)
        model.compile(dynamic=False, backend=config.compile_backend)
    return model


def check_backbone_takes(backbone: nn.Module, name: str, image_size: int) -> None:
    """A one-line error, before the run directory exists, when ``backbone`` cannot take the run's images (a
    timm ViT given images smaller than its patches fails its first step with a RuntimeError): one forward
    pass of two black images on the CPU, in eval mode and without gradients, so no BatchNorm statistics
    change and no random numbers are drawn. The fix it names is what the model at hand says about its sizes
    (:func:`image_size_fix`)."""
    images = torch.zeros(2, 3, image_size, image_size)
    training = backbone.training
    backbone.eval()
    try:
        with torch.no_grad():
            backbone(images)
    except Exception as exc:  # whatever a model raises on an input it was not made for
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise UserError(
            f"backbone {name} cannot take {image_size} px images ({type(exc).__name__}: {reason}); "
            f"{image_size_fix(backbone, image_size)}, or choose another --backbone"
        ) from None
    finally:
        backbone.train(training)


def image_size_fix(backbone: nn.Module, image_size: int) -> str:
    """The image size to pass for a backbone that failed at ``image_size``, from what the model itself holds.

    A timm ViT (or another model that cuts patches) is built for the run's size (``img_size``), so timm's
    ``pretrained_cfg`` size (224 for ``vit_tiny_patch16_224``) is not what it takes: its ``patch_embed`` says
    the size it was built for and its patch size, and the side must be a multiple of the patch. A timm model
    built without ``img_size`` (a CNN) takes the size timm's config says it was made for.
    """
    patch_embed = getattr(backbone, "patch_embed", None)
    built_for, patch = getattr(patch_embed, "img_size", None), getattr(patch_embed, "patch_size", None)
    if isinstance(built_for, (tuple, list)) and built_for and built_for[-1] != image_size:
        return f"pass the image size it was built for (--image-size {built_for[-1]})"
    if isinstance(patch, (tuple, list)) and patch and image_size % patch[-1]:
        side = patch[-1]
        return (
            f"pass an --image-size that is a multiple of its {side} px patches (e.g. {-(-image_size // side) * side})"
        )
    made_for = getattr(backbone, "pretrained_cfg", {}).get("input_size") if patch_embed is None else None
    if made_for and made_for[-1] != image_size:
        return f"pass the image size it was made for (--image-size {made_for[-1]})"
    return "pass an image size it takes"


def build_loss(config: PretrainConfig) -> NTXentLoss:
    """The run's loss at its temperature: NT-Xent (with ``--queue-size`` negatives remembered from earlier
    steps), or SupCon (``--loss supcon``). With ``--compile`` its scoring is compiled too (the normalisation,
    the logits and the log-sum-exp fuse into a few kernels); the queue's update stays outside the graph."""
    loss: NTXentLoss
    if config.loss == "supcon":
        loss = SupConLoss(temperature=config.temperature, gather_distributed=config.gather_distributed)
    else:
        loss = NTXentLoss(config.temperature, config.gather_distributed, queue_size=config.queue_size)
    if config.compile:
        loss.score = torch.compile(loss.score, dynamic=False, backend=config.compile_backend)  # type: ignore[method-assign]
    return loss
