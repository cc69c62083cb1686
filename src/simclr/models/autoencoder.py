"""A shallow MLP autoencoder on raw pixels, whose embedding layer seeds the ``ae`` projection head.

Schliebitz et al., "Improving Nonlinear Projection Heads using Pretrained Autoencoder Embeddings"
(arXiv:2408.14514), experiment 1: an MLP autoencoder (flatten -> Linear(C*H*W, 512) -> ReLU ->
Linear(512, d)) is trained to reconstruct images; its embedding layer ``Linear(512, d)`` is then reused,
frozen, as the input layer of SimCLR's projection head (see :func:`simclr.models.heads.build_head`).

The weights are stored as safetensors (``autoencoder.safetensors`` in a train-ae run) with the shape
information needed to rebuild the network (``latent_dim``, ``image_size``, ``channels``, ``hidden_dim``) and
the ``dataset`` it was trained on.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file
from torch import Tensor, nn

from simclr.atomic import atomic_write
from simclr.errors import UserError

__all__ = [
    "MLPAutoencoder",
    "load_autoencoder",
    "pixels",
    "save_autoencoder",
]

HIDDEN_DIM = 512  # the width of pythae's default MLP autoencoder, used by the paper


class MLPAutoencoder(nn.Module):
    """Encoder ``flatten -> Linear(C*H*W, 512) -> ReLU -> embedding Linear(512, latent)``; decoder
    ``Linear(latent, 512) -> ReLU -> Linear(512, C*H*W) -> sigmoid``, reshaped to ``(C, H, W)``.

    The sigmoid keeps reconstructions in [0, 1], the range of the pixels the MSE compares them with.

    >>> ae = MLPAutoencoder((3, 8, 8), latent_dim=16)
    >>> ae(torch.rand(2, 3, 8, 8)).shape, ae.encode(torch.rand(2, 3, 8, 8)).shape
    (torch.Size([2, 3, 8, 8]), torch.Size([2, 16]))
    """

    def __init__(self, image_shape: tuple[int, int, int], latent_dim: int, hidden_dim: int = HIDDEN_DIM) -> None:
        super().__init__()
        if latent_dim < 1 or hidden_dim < 1 or min(image_shape) < 1:
            raise UserError(
                f"autoencoder sizes must be positive, got image {image_shape}, latent {latent_dim}, "
                f"hidden {hidden_dim}; pass e.g. --latent-dim 128"
            )
        self.image_shape = tuple(int(v) for v in image_shape)
        self.latent_dim = int(latent_dim)
        self.hidden_dim = int(hidden_dim)
        pixels = self.image_shape[0] * self.image_shape[1] * self.image_shape[2]
        self.hidden = nn.Sequential(nn.Flatten(), nn.Linear(pixels, hidden_dim), nn.ReLU())
        self.embedding = nn.Linear(hidden_dim, latent_dim)
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, hidden_dim),
            nn.ReLU(),
            nn.Linear(hidden_dim, pixels),
            nn.Sigmoid(),
        )

    def encode(self, images: Tensor) -> Tensor:
        """``(B, C, H, W)`` pixels in [0, 1] to ``(B, latent_dim)`` codes."""
        return self.embedding(self.hidden(images))

    def decode(self, codes: Tensor) -> Tensor:
        """``(B, latent_dim)`` codes to ``(B, C, H, W)`` images in [0, 1]."""
        return self.decoder(codes).reshape(codes.shape[0], *self.image_shape)

    def forward(self, images: Tensor) -> Tensor:
        """The reconstruction of ``images``."""
        return self.decode(self.encode(images))


def save_autoencoder(model: MLPAutoencoder, path: Path, dataset: str) -> Path:
    """Write ``model`` as safetensors (atomically: a killed run never leaves half a file) and return ``path``."""
    path = Path(path)
    channels, height, _ = model.image_shape
    metadata = {
        "latent_dim": str(model.latent_dim),
        "hidden_dim": str(model.hidden_dim),
        "image_size": str(height),
        "channels": str(channels),
        "dataset": dataset,
    }
    tensors = {name: tensor.detach().cpu().contiguous() for name, tensor in model.state_dict().items()}
    with atomic_write(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return path


def load_autoencoder(path: Path | str) -> MLPAutoencoder:
    """Rebuild the autoencoder saved by :func:`save_autoencoder` in the file ``path`` (the file of a train-ae
    run directory is found by :func:`simclr.rundir.autoencoder_file`)."""
    target = Path(path).expanduser()
    if not target.is_file():
        raise UserError(
            f"autoencoder checkpoint {target} does not exist as a file; pass the weights written by 'simclr train-ae' "
            "(simclr.rundir.autoencoder_file finds them in its run directory)"
        )
    damaged = "the file is damaged or was not written by 'simclr train-ae'; train it again with 'simclr train-ae'"
    try:
        with safe_open(str(target), framework="pt") as handle:
            metadata = dict(handle.metadata() or {})
        state = load_file(str(target))
    except (SafetensorError, OSError) as exc:
        raise UserError(f"cannot read {target}: {exc}; {damaged}") from None
    try:
        channels, size = int(metadata["channels"]), int(metadata["image_size"])
        latent, hidden = int(metadata["latent_dim"]), int(metadata.get("hidden_dim", HIDDEN_DIM))
    except (KeyError, ValueError):
        raise UserError(f"{target} lacks the autoencoder's sizes in its metadata; {damaged}") from None
    model = MLPAutoencoder((channels, size, size), latent, hidden)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise UserError(f"{target} does not fit its own metadata ({str(exc).splitlines()[0]}); {damaged}") from None
    return model.eval()


def pixels(images: Tensor, device: torch.device | None = None) -> Tensor:
    """uint8 ``(B, C, H, W)`` images as float pixels in [0, 1], the autoencoder's input and target."""
    images = images.to(device) if device is not None else images
    return images.float().div_(255.0) if images.dtype == torch.uint8 else images.float()
