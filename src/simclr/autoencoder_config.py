"""The config class of ``simclr train-ae``: the pixel autoencoder whose embedding layer the SimCLR-AE head
starts from (Schliebitz et al. 2024). Built like the pretraining config (:mod:`simclr.config`) from settings
fields, and sharing its dataset field, the data reading group and the accelerator; imports no torch."""

from __future__ import annotations

from dataclasses import dataclass

from simclr.config import PretrainConfig, PretrainDataset
from simclr.data.reading import IMAGE_SIDE, DataReading
from simclr.device_settings import Accelerator, check_batch_fits
from simclr.ranges import COUNT, NON_NEGATIVE, OPEN_FRACTION, POSITIVE, SEED
from simclr.settings import check_values, setting, shared_setting


@dataclass
class _AutoencoderDataset:
    dataset: str = shared_setting(PretrainDataset, "dataset")  # pretraining's, without a default


@dataclass
class _AutoencoderTraining:
    """What the autoencoder is and how it trains."""

    latent_dim: int = setting("size of the embedding layer (the paper: 128, 256, 512)", 512, within=COUNT)
    image_size: int | None = setting("square image size (default: the dataset's)", None, within=IMAGE_SIDE)
    epochs: int = setting("training epochs", 20, within=COUNT)
    batch_size: int = setting("images per step", 256, within=COUNT)
    lr: float = setting("Adam learning rate (the paper: 1e-4)", 1e-4, within=POSITIVE)
    weight_decay: float = setting("Adam weight decay", 0.0, within=NON_NEGATIVE)
    val_fraction: float = setting("part of the training split held out for validation", 0.1, within=OPEN_FRACTION)
    train_size: int | None = setting("spirograph: number of generated training images", None, within=COUNT)
    test_size: int = shared_setting(PretrainConfig, "test_size", default=2_000)
    standardize: bool = setting(
        "Z-score the encoder's input with the training split's per-channel mean and std (SimCLR-AE's option); the "
        "reconstruction target stays the pixels in [0, 1]",
        False,
    )
    seed: int = setting("seed of the split, the order and the weights", 0, within=SEED)


@dataclass
class AutoencoderConfig(Accelerator, _AutoencoderTraining, DataReading, _AutoencoderDataset):
    """The settings of ``simclr train-ae`` (the pixel autoencoder of the SimCLR-AE head); saved in its run."""

    out: str | None = setting("run directory (default: runs/ae-DATASET-LATENT-TIMESTAMP)", None, path=True)
    logger: str = shared_setting(PretrainConfig, "logger", default=PretrainConfig.logger)
    experiment: str = shared_setting(PretrainConfig, "experiment", default=PretrainConfig.experiment)

    def validate(self) -> None:
        """Every check that needs no data, so bad flags fail before anything is loaded or written."""
        check_values(self)
        if self.image_size is not None:
            check_batch_fits(self.batch_size, self.image_size, "one batch of images")
