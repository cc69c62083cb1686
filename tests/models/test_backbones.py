from pathlib import Path

import pytest
import torch
from torch import nn

from simclr.errors import UserError
from simclr.models.backbones import BACKBONE_NAMES, build_backbone, choose_stem, resolve_stem
from simclr.models.heads import build_head


@pytest.mark.parametrize(
    ("size", "stem"),
    [(28, "cifar"), (32, "cifar"), (64, "cifar"), (96, "stl"), (112, "stl"), (128, "imagenet"), (224, "imagenet")],
)
def test_stem_follows_image_size(size: int, stem: str) -> None:
    assert choose_stem(size) == stem
    assert resolve_stem("auto", size) == stem


def test_cifar_stem_keeps_resolution() -> None:
    backbone, _ = build_backbone("resnet18", "cifar")
    assert backbone.conv1.kernel_size == (3, 3) and backbone.conv1.stride == (1, 1)
    assert isinstance(backbone.maxpool, nn.Identity)
    # 32px input reaches layer4 at 4x4 (ImageNet stem would give 1x1)
    x = torch.zeros(1, 3, 32, 32)
    trunk = nn.Sequential(*list(backbone.children())[:-2])
    assert trunk(x).shape[-1] == 4


def test_stl_stem_has_maxpool_and_imagenet_stem_is_untouched() -> None:
    stl, _ = build_backbone("resnet18", "stl")
    assert stl.conv1.kernel_size == (3, 3) and isinstance(stl.maxpool, nn.MaxPool2d)
    imagenet, _ = build_backbone("resnet18", "imagenet")
    assert imagenet.conv1.kernel_size == (7, 7) and imagenet.conv1.stride == (2, 2)


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "resnext50_32x4d", "wide_resnet50_2"])
def test_backbone_outputs_feature_vector(name: str) -> None:
    backbone, dim = build_backbone(name, "cifar")
    assert isinstance(backbone.fc, nn.Identity)
    assert backbone(torch.zeros(2, 3, 32, 32)).shape == (2, dim)
    assert dim == (512 if name == "resnet18" else 2048)


def test_every_listed_backbone_exists_in_torchvision() -> None:
    import torchvision

    for name in BACKBONE_NAMES:
        assert callable(getattr(torchvision.models, name))


def test_unknown_backbone_and_stem_are_user_errors() -> None:
    with pytest.raises(UserError, match="unknown backbone 'resnet9'"):
        build_backbone("resnet9", "cifar")
    with pytest.raises(UserError, match="unknown stem"):
        resolve_stem("tiny", 32)


def test_mlp_head_is_linear_bn_relu_linear_by_default() -> None:
    head, out = build_head("mlp", 512)
    kinds = [type(m) for m in head]
    assert kinds == [nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Linear]
    assert head[0].out_features == 512 and out == 128
    assert head(torch.randn(4, 512)).shape == (4, 128)


def test_mlp_head_depth_width_and_bn_are_configurable() -> None:
    head, out = build_head("mlp", 64, out_dim=32, hidden_dim=100, num_layers=3, batch_norm=False)
    linears = [m for m in head if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(64, 100), (100, 100), (100, 32)]
    assert not any(isinstance(m, nn.BatchNorm1d) for m in head) and out == 32


def test_linear_and_identity_heads() -> None:
    linear, out = build_head("linear", 64, out_dim=16)
    assert isinstance(linear, nn.Linear) and out == 16
    identity, out = build_head("identity", 64)
    assert isinstance(identity, nn.Identity) and out == 64
    with pytest.raises(UserError, match="needs >= 2 layers"):
        build_head("mlp", 64, num_layers=1)
    with pytest.raises(UserError, match="unknown head"):
        build_head("transformer", 64)


def test_mlp_head_activation_is_configurable() -> None:
    head, _ = build_head("mlp", 64, out_dim=16, num_layers=3, activation="gelu")
    assert [type(m) for m in head].count(nn.GELU) == 2 and not any(isinstance(m, nn.ReLU) for m in head)
    with pytest.raises(UserError, match="unknown activation"):
        build_head("mlp", 64, activation="swishy")


def test_a_timm_vit_is_built_for_the_runs_image_size() -> None:
    pytest.importorskip("timm")
    vit, dim = build_backbone("timm:vit_tiny_patch16_224", None, 32)  # a 2 x 2 grid of 16 px patches
    assert vit(torch.zeros(2, 3, 32, 32)).shape == (2, dim)
    convnet, _ = build_backbone("timm:resnet18", None, 16)  # no img_size in its constructor: any size
    assert convnet(torch.zeros(2, 3, 16, 16)).shape[0] == 2


def fake_hub_cache(cache: Path, hub_id: str, state: dict[str, torch.Tensor]) -> None:
    """A Hugging Face cache holding ``hub_id``'s model.safetensors, laid out as huggingface_hub writes it."""
    from safetensors.torch import save_file

    repo = cache / ("models--" + hub_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0123abcd")
    (repo / "snapshots" / "0123abcd").mkdir(parents=True)
    save_file(
        {key: value.contiguous() for key, value in state.items()}, repo / "snapshots" / "0123abcd" / "model.safetensors"
    )


def test_weights_timm_start_from_the_cached_pretrained_weights_and_offline_without_them_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    timm = pytest.importorskip("timm")
    from huggingface_hub import constants  # read from the environment when imported, so set here

    from simclr.config import build_config
    from simclr.model_from_config import build_model

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # no network: the cache or nothing
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    config = build_config({}, {"backbone": "timm:resnet18", "weights": "timm", "out": str(tmp_path / "run")})
    with pytest.raises(UserError) as error:
        build_model(config, 16)
    message = str(error.value)
    assert "\n" not in message and "timm:resnet18's pretrained weights are not in the local cache (" in message
    assert str(tmp_path / "hub" / "models--timm--resnet18.a1_in1k") in message and "--weights none" in message

    torch.manual_seed(1)
    pretrained = timm.create_model("resnet18", pretrained=False)
    fake_hub_cache(tmp_path / "hub", "timm/resnet18.a1_in1k", pretrained.state_dict())
    model = build_model(config, 16)
    assert torch.equal(model.backbone.conv1.weight, pretrained.conv1.weight)
    with pytest.raises(UserError, match="--weights timm loads a timm model's weights; use --backbone timm:<model>"):
        build_config({}, {"backbone": "resnet18", "weights": "timm"})
