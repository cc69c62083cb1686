"""The ``ae`` projection head of SimCLR-AE (arXiv:2408.14514, experiment 2)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from simclr.cli import main
from simclr.config import build_config
from simclr.errors import UserError
from simclr.evaluation.inference.embed import load_projection_head
from simclr.evaluation.loading import resolve_run
from simclr.model_from_config import build_model, build_projection_head
from simclr.models.autoencoder import MLPAutoencoder, save_autoencoder
from simclr.models.heads import ACTIVATIONS, build_activation, build_head
from simclr.optim.build import build_optimizer

LATENT = 16


@pytest.fixture(scope="module")
def ae_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = MLPAutoencoder((3, 8, 8), latent_dim=LATENT)
    out = tmp_path_factory.mktemp("ae") / "autoencoder.safetensors"
    return save_autoencoder(model, out, dataset="spirograph")


def saved_embedding(path: Path) -> dict[str, torch.Tensor]:
    state = load_file(str(path))
    return {"weight": state["embedding.weight"], "bias": state["embedding.bias"]}


def test_head_layers_and_bit_identical_embedding(ae_file: Path) -> None:
    head, out_dim = build_head("ae", 512, out_dim=64, ae_checkpoint=ae_file, activation="Tanh")
    assert out_dim == 64
    assert isinstance(head, nn.Sequential)
    embedding, act, last = head
    assert isinstance(act, nn.Tanh)
    assert (embedding.in_features, embedding.out_features) == (512, LATENT)
    assert (last.in_features, last.out_features) == (LATENT, 64)
    saved = saved_embedding(ae_file)
    assert torch.equal(embedding.weight, saved["weight"]) and torch.equal(embedding.bias, saved["bias"])
    assert not any(p.requires_grad for p in embedding.parameters())
    assert all(p.requires_grad for p in last.parameters())
    assert head(torch.randn(3, 512)).shape == (3, 64)


def test_run_directory_is_accepted(ae_file: Path) -> None:
    head, _ = build_projection_head(build_config({}, {"head": "ae", "ae_checkpoint": str(ae_file.parent)}), 512)
    assert torch.equal(head[0].weight, saved_embedding(ae_file)["weight"])


def one_step(model: nn.Module) -> None:
    optimizer = build_optimizer(model, "sgd", lr=0.5, weight_decay=1e-3)
    _, z = model(torch.rand(4, 3, 32, 32))
    z.pow(2).sum().backward()
    optimizer.step()


def small_model(ae_file: Path, **overrides: object) -> nn.Module:
    values: dict[str, object] = dict(
        dataset="spirograph",
        backbone="resnet18",
        head="ae",
        ae_checkpoint=str(ae_file),
        head_out_dim=8,
    )
    values.update(overrides)
    return build_model(build_config({}, values), image_size=32)


def test_frozen_embedding_is_unchanged_by_an_optimizer_step(ae_file: Path) -> None:
    torch.manual_seed(0)
    model = small_model(ae_file, head_activation="sigmoid")
    embedding, last = model.head[0], model.head[2]
    last_before = last.weight.detach().clone()
    one_step(model)
    saved = saved_embedding(ae_file)
    assert not embedding.weight.requires_grad
    assert torch.equal(embedding.weight, saved["weight"]) and torch.equal(embedding.bias, saved["bias"])
    assert not torch.equal(last.weight, last_before)


def test_unfrozen_embedding_is_trained(ae_file: Path) -> None:
    torch.manual_seed(0)
    model = small_model(ae_file, freeze_head_input=False)
    embedding = model.head[0]
    assert embedding.weight.requires_grad
    one_step(model)
    assert not torch.equal(embedding.weight, saved_embedding(ae_file)["weight"])


@pytest.mark.parametrize("name", [*ACTIVATIONS, "ReLU", "LeakyReLU", "leaky_relu", "SiLU", "GELU"])
def test_activations_by_name(name: str) -> None:
    module = build_activation(name)
    assert module(torch.zeros(2, 3)).shape == (2, 3)


def test_activation_names_map_to_the_torch_modules(ae_file: Path) -> None:
    expected = {
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
    for name, kind in expected.items():
        head, _ = build_head("ae", 512, ae_checkpoint=ae_file, activation=name.upper())
        assert type(head[1]) is kind


def test_unknown_activation(ae_file: Path) -> None:
    with pytest.raises(UserError, match="unknown activation 'swishy'; use one of relu, silu"):
        build_head("ae", 512, ae_checkpoint=ae_file, activation="swishy")


def test_feature_size_mismatch(ae_file: Path) -> None:
    with pytest.raises(UserError, match="takes 512 inputs but the backbone gives 2048 features.*resnet18/resnet34"):
        small_model(ae_file, backbone="resnet50")


def test_missing_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="needs --ae-checkpoint"):
        build_head("ae", 512)
    with pytest.raises(UserError, match="does not exist"):
        build_head("ae", 512, ae_checkpoint=tmp_path / "nope.safetensors")


def test_other_heads_unchanged() -> None:
    head, dim = build_head("mlp", 512, 128, None, 2, True)
    assert dim == 128 and len(head) == 4


@pytest.mark.slow
def test_pretrain_with_ae_head_keeps_the_layer_frozen(ae_file: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    args = [
        "pretrain",
        "--head",
        "ae",
        "--ae-checkpoint",
        str(ae_file),
        "--dataset",
        "spirograph",
        "--train-size",
        "256",
        "--test-size",
        "64",
        "--batch-size",
        "64",
        "--max-steps",
        "2",
        "--epochs",
        "1",
        "--precision",
        "32",
        "--accelerator",
        "cpu",
        "--head-activation",
        "tanh",
        "--out",
        str(run),
        "--quiet",
    ]
    assert main(args) == 0
    state = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    saved = saved_embedding(ae_file)
    assert torch.equal(state["model.head.0.weight"], saved["weight"])
    assert torch.equal(state["model.head.0.bias"], saved["bias"])
    assert state["model.head.2.weight"].shape == (128, LATENT)
    # simclr embed --layer projection rebuilds the same head from the run's config
    head = load_projection_head(resolve_run(run), 512)
    assert torch.equal(head[0].weight, saved["weight"]) and isinstance(head[1], nn.Tanh)
    assert torch.equal(head[2].weight, state["model.head.2.weight"])
