"""``pretrain --weights imagenet``: the backbone starts from torchvision's ImageNet weights, read from the torch
hub cache; offline without the file, a one-line error names it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision

from simclr.config import build_config
from simclr.errors import UserError
from simclr.model_from_config import build_model
from simclr.models.backbones import imagenet_cache_file, imagenet_weights
from simclr.resolve import backbone_stem


def test_pretraining_backbone_loads_the_cached_weights(offline_hub: Path) -> None:
    torch.manual_seed(7)
    reference = torchvision.models.resnet18().state_dict()  # a random stand-in for torchvision's file
    torch.save(reference, offline_hub)
    config = build_config({}, dict(dataset="cifar10", weights="imagenet"))
    assert backbone_stem(config, 32) == "imagenet"  # the stem the weights were trained with, even at 32 px
    model = build_model(config, 32)
    state = model.backbone.state_dict()
    assert set(state) == {key for key in reference if not key.startswith("fc.")}
    assert all(torch.equal(state[key], reference[key]) for key in state)
    assert model.backbone.conv1.kernel_size == (7, 7)


def test_offline_without_the_file_is_one_line_naming_it(offline_hub: Path) -> None:
    config = build_config({}, dict(dataset="cifar10", weights="imagenet"))
    with pytest.raises(UserError) as info:
        build_model(config, 32)
    message = str(info.value)
    assert imagenet_cache_file(imagenet_weights("resnet18")) == str(offline_hub)
    assert str(offline_hub) in message and imagenet_weights("resnet18").url in message and "\n" not in message


def test_weights_need_the_imagenet_stem() -> None:
    with pytest.raises(UserError, match="--weights imagenet needs the ImageNet stem"):
        build_config({}, dict(dataset="cifar10", weights="imagenet", stem="cifar")).validate()
    assert backbone_stem(build_config({}, dict(dataset="cifar10")), 32) == "cifar"
