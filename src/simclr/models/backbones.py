"""Backbones: torchvision ResNets with a stem that fits the image size, timm models by name, or a module of
the user's own.

SimCLR (Chen et al. 2020, arXiv:2002.05709, Appendix B.9) replaces the ImageNet stem (7x7 conv, stride 2,
max-pool) by a 3x3 stride-1 conv without max-pool for 32px CIFAR images; Foster et al. (2020) add an STL
stem (3x3 stride-1 conv followed by max-pool) for 96px images. Using the ImageNet stem on 32px images throws
away 4x of the resolution before the first block and is the most common reason CIFAR numbers are not
reproduced (lightly issue #1419), so the stem is chosen from the image size unless the user overrides it.

``--weights imagenet`` (SimCLR-AE's runs all start so) loads torchvision's ImageNet weights into a backbone
with the ImageNet stem from torch hub's cache, ``$TORCH_HOME/hub/checkpoints/<file>``, downloading the file
there (checked against the hash in its name) when it is missing; offline, the error names that file and the
URL to fetch it from. The file is read here with ``torch.load(weights_only=True)``, not through torchvision's
``WeightsEnum.get_state_dict`` (``torch.hub.load_state_dict_from_url``), which unpickles it in full: whoever
can write into the cache would otherwise run code in every run that starts from ImageNet weights. A file
that holds anything but the network's tensors, or non-finite ones, is a one-line error naming it.

A backbone name is a torchvision name (``resnet18``), ``timm:<model>`` (any timm model, built with
``num_classes=0`` so it returns pooled features; timm is optional), or ``custom:<module.Class>``: the user's
own ``nn.Module`` passed from Python, which a run's files name but nothing can rebuild from the name alone.
"""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlparse

import torch
import torchvision
from torch import Tensor, nn

from simclr.errors import UserError
from simclr.models.backbone_file import refuse_non_finite

if TYPE_CHECKING:
    from torchvision.models import WeightsEnum

Stem = Literal["cifar", "stl", "imagenet"]
STEMS: tuple[str, ...] = ("auto", "cifar", "stl", "imagenet")
INITIAL_WEIGHTS: tuple[str, ...] = ("none", "imagenet")  # what --weights offers

TIMM_PREFIX = "timm:"
CUSTOM_PREFIX = "custom:"

BACKBONE_NAMES: tuple[str, ...] = (
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "resnext50_32x4d",
    "resnext101_32x8d",
    "resnext101_64x4d",
    "wide_resnet50_2",
    "wide_resnet101_2",
)


def choose_stem(image_size: int) -> Stem:
    """The stem for an image side: CIFAR stem up to 64px, STL stem up to 112px, ImageNet stem above."""
    if image_size <= 64:
        return "cifar"
    if image_size <= 112:
        return "stl"
    return "imagenet"


def resolve_stem(stem: str, image_size: int) -> Stem:
    """Turn ``auto`` into a concrete stem and reject unknown names."""
    if stem == "auto":
        return choose_stem(image_size)
    if stem not in STEMS:
        raise UserError(f"unknown stem {stem!r}; use one of {', '.join(STEMS)}")
    return stem  # type: ignore[return-value]


def _replace_stem(model: nn.Module, stem: Stem) -> None:
    if stem == "imagenet":
        return
    old_conv = model.conv1
    assert isinstance(old_conv, nn.Conv2d)
    conv = nn.Conv2d(3, old_conv.out_channels, kernel_size=3, stride=1, padding=1, bias=False)
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    model.conv1 = conv
    if stem == "cifar":
        model.maxpool = nn.Identity()


def build_backbone(name: str, stem: Stem | None = None, image_size: int | None = None) -> tuple[nn.Module, int]:
    """A randomly initialised backbone without its classifier: a torchvision ResNet with ``stem`` (default
    torchvision's own, ``imagenet``), or a timm model for ``timm:<model>`` (whose stem is its own), built for
    ``image_size`` px images where the model fixes its input size (a ViT's position embedding).

    Returns the module (mapping ``(B, 3, H, W)`` to ``(B, feature_dim)``) and ``feature_dim``.

    >>> import torch
    >>> backbone, dim = build_backbone("resnet18", "cifar")
    >>> backbone(torch.zeros(2, 3, 32, 32)).shape, dim
    (torch.Size([2, 512]), 512)
    """
    if name.startswith(TIMM_PREFIX):
        if stem not in (None, "imagenet"):
            raise UserError(f"the {stem} stem applies to torchvision ResNets; {name} keeps timm's own stem")
        return build_timm_backbone(name[len(TIMM_PREFIX) :], image_size)
    if name.startswith(CUSTOM_PREFIX):
        raise UserError(
            f"{name} is a module of your own, which simclr cannot build from its name; pass the module from "
            "Python: simclr.pretrain(config, backbone=module) or simclr.load_backbone(run, module=module)"
        )
    if name not in BACKBONE_NAMES:
        raise UserError(
            f"unknown backbone {name!r}; use one of {', '.join(BACKBONE_NAMES)}, "
            "or timm:<model> (pip install 'simclr-kit[timm]')"
        )
    model = getattr(torchvision.models, name)(weights=None)
    feature_dim = model.fc.in_features
    model.fc = nn.Identity()
    _replace_stem(model, stem or "imagenet")
    return model, feature_dim


def build_timm_backbone(
    model_name: str, image_size: int | None = None, pretrained: bool = False
) -> tuple[nn.Module, int]:
    """timm's ``model_name``, randomly initialised (``pretrained``: with timm's pretrained weights, from the
    Hugging Face cache, downloaded there when missing), without its classifier (``num_classes=0``: it returns
    its pooled features), and their size (timm's ``num_features``).

    With ``image_size``, a model whose constructor takes ``img_size`` (ViTs and other models with a fixed
    input size) is built for that size; the others (convolutional networks) take any size as they are. A model
    timm cannot build for that size is a one-line error; one that builds but cannot take such images (a patch
    larger than the image) fails the training's first forward pass, which
    :func:`simclr.training.model_and_loss.check_backbone_takes` turns into one line before the run starts."""
    try:
        import timm
    except ImportError:
        raise UserError(
            f"backbone timm:{model_name} needs timm; install it with: pip install 'simclr-kit[timm]'"
        ) from None
    try:
        try:
            sized: dict[str, Any] = {} if image_size is None else {"img_size": image_size}
            model = timm.create_model(model_name, pretrained=pretrained, num_classes=0, **sized)
        except TypeError:  # a constructor without img_size: the model takes any input size
            model = timm.create_model(model_name, pretrained=pretrained, num_classes=0)
    except OSError as exc:  # huggingface_hub: not in the cache and no network (its errors are OSErrors)
        raise UserError(_timm_weights_missing(timm, model_name, exc)) from None
    except RuntimeError as exc:  # timm's "Unknown model (...)"
        raise UserError(
            f"timm cannot build {model_name!r} ({exc}); list its models with timm.list_models('*{model_name}*')"
        ) from None
    except (AssertionError, ValueError) as exc:  # e.g. an image smaller than the model's patch
        raise UserError(
            f"timm:{model_name} cannot be built for {image_size} px images ({str(exc).splitlines()[0][:160]}); "
            "choose another --image-size or model"
        ) from None
    return model, int(model.num_features)  # type: ignore[arg-type]


def _timm_weights_missing(timm: Any, model_name: str, exc: Exception) -> str:
    """One line: where timm's pretrained weights of ``model_name`` would be, and how to get them there."""
    cfg = timm.models.get_pretrained_cfg(model_name) if "." not in model_name else None
    hub_id = getattr(cfg, "hf_hub_id", None) or f"timm/{model_name}"
    from huggingface_hub import constants  # timm's own dependency: where it caches what it downloads

    folder = os.path.join(constants.HF_HUB_CACHE, "models--" + hub_id.replace("/", "--"))
    return (
        f"timm:{model_name}'s pretrained weights are not in the local cache ({folder}, file model.safetensors) and "
        f"could not be downloaded ({type(exc).__name__}); fetch them once where there is a network, with "
        f"python -c \"import timm; timm.create_model('{model_name}', pretrained=True)\", or use --weights none"
    )


def is_torchvision_backbone(name: str) -> bool:
    """True for the torchvision names, whose stem simclr chooses; False for timm models and modules of one's own."""
    return not name.startswith((TIMM_PREFIX, CUSTOM_PREFIX))


def custom_backbone_name(module: nn.Module) -> str:
    """What a run's files call a module of the user's own: ``custom:<module path>.<class>``."""
    cls = type(module)
    return f"{CUSTOM_PREFIX}{cls.__module__}.{cls.__qualname__}"


def measure_feature_dim(module: nn.Module, image_size: int) -> int:
    """The size of the features ``module`` gives for ``(B, 3, image_size, image_size)`` images, from one dry
    forward pass of two black images in eval mode (so no BatchNorm statistics change); a ``feature_dim``
    (or timm's ``num_features``) attribute must agree with it. A module that fails, or does not return
    ``(B, D)`` features, is a one-line UserError."""
    name = custom_backbone_name(module)[len(CUSTOM_PREFIX) :]
    declared = getattr(module, "feature_dim", None)
    declared = getattr(module, "num_features", None) if declared is None else declared
    parameter = next(module.parameters(), None)
    images = torch.zeros(2, 3, image_size, image_size, device=parameter.device if parameter is not None else None)
    training = module.training
    module.eval()
    try:
        with torch.no_grad():
            features = module(images)
    except Exception as exc:  # the user's code: any failure is theirs to fix, and is named in one line
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise UserError(f"backbone {name} fails on a batch of shape {tuple(images.shape)}: {reason}") from None
    finally:
        module.train(training)
    if not isinstance(features, torch.Tensor) or features.dim() != 2 or features.shape[0] != 2:
        shape = tuple(features.shape) if isinstance(features, torch.Tensor) else type(features).__name__
        raise UserError(
            f"backbone {name} maps {tuple(images.shape)} images to {shape}; a backbone returns (B, D) features "
            "(end it with pooling and flatten)"
        )
    if declared is not None and int(declared) != features.shape[1]:
        raise UserError(f"backbone {name} says feature_dim {declared} but returns {features.shape[1]} features")
    return int(features.shape[1])


def imagenet_weights(name: str) -> WeightsEnum:
    """torchvision's default ImageNet weights of backbone ``name`` (e.g. ``ResNet18_Weights.IMAGENET1K_V1``)."""
    try:
        return torchvision.models.get_model_weights(name).DEFAULT  # type: ignore[attr-defined,no-any-return]
    except (KeyError, ValueError):
        raise UserError(f"torchvision has no ImageNet weights for {name!r}; use --weights none") from None


def imagenet_cache_file(weights: WeightsEnum) -> str:
    """Where ``torch.hub`` looks for (and downloads) ``weights``: ``<hub dir>/checkpoints/<file name of the URL>``."""
    return os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(urlparse(weights.url).path))


def _download_imagenet_file(weights: WeightsEnum, path: str) -> None:
    """Download ``weights`` into the hub cache at ``path``, checked against the SHA-256 prefix in the file's
    name as torch hub checks it; a failed download is a one-line UserError naming the URL and the file."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    found = torch.hub.HASH_REGEX.search(os.path.basename(path))
    try:
        torch.hub.download_url_to_file(weights.url, path, found.group(1) if found else None, progress=False)
    except (OSError, RuntimeError, ValueError) as exc:  # URLError is an OSError; a wrong hash a RuntimeError
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise UserError(
            f"cannot download the ImageNet weights {weights.url} ({reason}); without internet, download it "
            f"and save it as {path}"
        ) from None


def load_weights_only(path: str | Path, what: str, fix: str) -> Any:
    """``torch.load(path, weights_only=True)``: tensors and plain containers, never code, whatever the
    environment says (``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` only changes the default). A file holding other
    pickled objects (a whole ``nn.Module``, a payload), or none that torch reads, is a one-line UserError
    naming ``path``, ``what`` it should have been, and the ``fix``."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError(f"{path} does not exist; {fix}") from None
    except IsADirectoryError:
        raise UserError(f"{path} is a folder, not {what}; {fix}") from None
    except pickle.UnpicklingError as exc:
        inner = str(exc.__context__ or exc)  # torch wraps the unpickler's own error in a page of advice
        found = re.search(r"GLOBAL (\S+)", inner)
        if found:  # a class or function weights_only does not allow: a whole nn.Module, or a payload
            raise UserError(
                f"{path} holds pickled Python objects ({found.group(1)[:80]}), not just tensors (a whole model "
                f"saved with torch.save(model)?), which simclr does not unpickle; {fix}"
            ) from None
        reason = " ".join(inner.split())[:200]
        raise UserError(f"cannot read {path} as {what} ({reason}); {fix}") from None
    except (RuntimeError, OSError, EOFError, ValueError, AttributeError) as exc:
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise UserError(f"cannot read {path} as {what} ({reason}); {fix}") from None


def _read_imagenet_file(path: str, name: str) -> dict[str, Tensor]:
    """The tensors of the cached ImageNet weights of ``name``, read weights-only; anything but finite tensors
    is a one-line UserError naming the file."""
    fix = "delete it so that it is downloaded again"
    loaded = load_weights_only(path, f"the ImageNet weights of {name}", fix)
    if not isinstance(loaded, dict) or not all(isinstance(value, Tensor) for value in loaded.values()):
        raise UserError(f"{path} is not a state dict of tensors (the ImageNet weights of {name}); {fix}")
    refuse_non_finite(loaded, path)
    return {str(key): value for key, value in loaded.items()}


def load_imagenet_backbone(name: str) -> tuple[nn.Module, int, WeightsEnum]:
    """``(module without fc, feature_dim, weights)`` with torchvision's ImageNet weights loaded.

    Reads the file in torch hub's cache (no network), downloading it there first when it is missing. A failed
    download, a file that is not the network's tensors (other keys, other shapes, pickled objects, NaN) is a
    one-line :class:`UserError` with the path (and the URL).
    """
    weights = imagenet_weights(name)
    path = imagenet_cache_file(weights)
    if not os.path.exists(path):
        _download_imagenet_file(weights, path)
    state = {key: value for key, value in _read_imagenet_file(path, name).items() if not key.startswith("fc.")}
    module, feature_dim = build_backbone(name, "imagenet")
    wanted = module.state_dict()
    missing, unexpected = sorted(set(wanted) - set(state)), sorted(set(state) - set(wanted))
    wrong_shape = [key for key in set(wanted) & set(state) if wanted[key].shape != state[key].shape]
    if missing or unexpected or wrong_shape:
        first = (unexpected or missing or wrong_shape)[0]
        raise UserError(
            f"{path} does not hold the ImageNet weights of {name} ({len(missing)} missing, {len(unexpected)} "
            f"unexpected, {len(wrong_shape)} misshapen tensors, e.g. {first[:80]}); delete it so that it is "
            "downloaded again"
        )
    module.load_state_dict(state)
    return module, feature_dim, weights
