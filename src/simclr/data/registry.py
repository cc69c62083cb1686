"""Dataset names, their constants, and one entry point that loads any of them as an ImageStore."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from simclr.data.imagefolder import has_split_layout, load_image_folder, load_split_folder
from simclr.data.imagenet import IMAGENET_IMAGE_SIZE, IMAGENET_SUBSETS, load_imagenet
from simclr.data.spirograph import SPIROGRAPH_SEED, make_spirograph_store
from simclr.data.store import ImageStore
from simclr.data.streaming import PackedSplit, SplitStore, find_packed_split, is_packed, packed_image_size
from simclr.data.torchvision_sets import DEFAULT_IMAGE_SIZES, LOADERS, SPLITS
from simclr.errors import UserError

log = logging.getLogger("simclr")

__all__ = [
    "DATASET_NAMES",
    "PYTHON_DATASET",
    "DatasetInfo",
    "SPIROGRAPH_TEST_SIZE",
    "SPIROGRAPH_TRAIN_SIZE",
    "dataset_info",
    "load_dataset",
]

DATASET_NAMES: tuple[str, ...] = (
    "spirograph",
    "cifar10",
    "cifar100",
    "stl10",
    "mnist",
    "imagenette",
    "imagenet",
    "imagenet100",
    "fgvc-aircraft",
    "fashion-mnist",
    "emnist",
    "caltech101",
    "caltech256",
    "dtd",
    "country211",
    "food101",
    "eurosat",
    "flowers102",
    "gtsrb",
    "oxford-iiit-pet",
    "imagefolder",
    "packed",
)
# a Dataset passed from Python (simclr.pretrain(config, dataset=...)): a run's config names it so, but no
# command can load it by name
PYTHON_DATASET = "python"
SPIROGRAPH_TRAIN_SIZE = 100_000
IN_MEMORY_PACKED_BYTES = 8 * 2**30  # per split: what a command that holds its data decodes of a packed split
SPIROGRAPH_TEST_SIZE = 20_000

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
# name: (default image size, classes, labelled, mean, std, regression)
_TABLE: dict[str, tuple[int, int | None, bool, tuple[float, float, float], tuple[float, float, float], bool]] = {
    "spirograph": (32, None, False, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), True),
    "cifar10": (32, 10, True, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616), False),
    "cifar100": (32, 100, True, (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762), False),
    "stl10": (96, 10, True, (0.4409, 0.4279, 0.3868), (0.2309, 0.2262, 0.2237), False),
    "mnist": (32, 10, True, (0.1307,) * 3, (0.3081,) * 3, False),
    "imagenette": (128, 10, True, _IMAGENET_MEAN, _IMAGENET_STD, False),
    "imagenet": (IMAGENET_IMAGE_SIZE, 1000, True, _IMAGENET_MEAN, _IMAGENET_STD, False),
    "imagenet100": (IMAGENET_IMAGE_SIZE, 100, True, _IMAGENET_MEAN, _IMAGENET_STD, False),
    "fgvc-aircraft": (128, 30, True, _IMAGENET_MEAN, _IMAGENET_STD, False),
    # 28-px statistics, as mnist's (the padding to 32 px lowers the mean a little).
    "fashion-mnist": (32, 10, True, (0.2860,) * 3, (0.3530,) * 3, False),
    "emnist": (32, 62, True, (0.1736,) * 3, (0.3317,) * 3, False),
    # Photographs: ImageNet's statistics, as for the other photograph sets.
    "caltech101": (128, 101, True, _IMAGENET_MEAN, _IMAGENET_STD, False),
    "caltech256": (128, 257, True, _IMAGENET_MEAN, _IMAGENET_STD, False),
    "dtd": (128, 47, True, _IMAGENET_MEAN, _IMAGENET_STD, False),
    "country211": (128, 211, True, _IMAGENET_MEAN, _IMAGENET_STD, False),
    "food101": (128, 101, True, _IMAGENET_MEAN, _IMAGENET_STD, False),
    "eurosat": (64, 10, True, _IMAGENET_MEAN, _IMAGENET_STD, False),
    "flowers102": (128, 102, True, _IMAGENET_MEAN, _IMAGENET_STD, False),
    "gtsrb": (32, 43, True, _IMAGENET_MEAN, _IMAGENET_STD, False),
    "oxford-iiit-pet": (128, 37, True, _IMAGENET_MEAN, _IMAGENET_STD, False),
    "imagefolder": (0, None, False, _IMAGENET_MEAN, _IMAGENET_STD, False),
    "packed": (0, None, False, _IMAGENET_MEAN, _IMAGENET_STD, False),
    # a user's own images: ImageNet's statistics unless --standardize measures them
    PYTHON_DATASET: (0, None, False, _IMAGENET_MEAN, _IMAGENET_STD, False),
}


@dataclass(frozen=True)
class DatasetInfo:
    """Constants of a dataset as used for training at ``image_size``."""

    name: str
    image_size: int
    num_classes: int | None
    labelled: bool
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    jitter_strength: float  # 0.5 for CIFAR-size data (<=64px), 1.0 for larger
    blur: bool  # False for <=64px
    regression: bool  # True for spirograph


def _check_name(name: str) -> str:
    if name not in DATASET_NAMES and name != PYTHON_DATASET:
        raise UserError(f"unknown dataset {name!r}; use one of {', '.join(DATASET_NAMES)}")
    return name


def dataset_info(name: str, image_size: int | None = None, *, store: SplitStore | None = None) -> DatasetInfo:
    """Constants of dataset ``name`` at ``image_size`` (default: the dataset's usual size).

    ``imagefolder`` has no fixed size or class count: pass the loaded ``store`` to take them from
    the data; without ``image_size`` and ``store`` its ``image_size`` is 0 ("native, unknown until
    loaded") and ``num_classes`` is None.
    """
    _check_name(name)
    default_size, num_classes, labelled, mean, std, regression = _TABLE[name]
    if image_size is not None and image_size <= 0:
        raise UserError(f"image size must be positive, got {image_size}; pass e.g. --image-size 64")
    size = image_size or (store.image_size if store is not None else default_size)
    if name in ("imagefolder", "packed", PYTHON_DATASET) and store is not None:
        labelled = store.has_labels
        num_classes = len(store.class_names) if labelled else None
    size = int(size)
    large = size > 64
    return DatasetInfo(
        name=name,
        image_size=size,
        num_classes=num_classes,
        labelled=labelled,
        mean=mean,
        std=std,
        jitter_strength=1.0 if large else 0.5,
        blur=large,
        regression=regression,
    )


def _load_imagefolder(
    split: str,
    data_dir: Path | None,
    image_size: int | None,
    limit: int | None,
    seed: int,
    workers: int,
    follow_links: bool,
    resize: str,
) -> ImageStore | None:
    if data_dir is None:
        raise UserError("imagefolder needs a folder of images; pass --data-dir DIR")
    root = Path(data_dir).expanduser()
    if not root.is_dir():
        raise UserError(f"image folder {root} does not exist; point --data-dir at an existing folder")
    if has_split_layout(root):
        return load_split_folder(
            root,
            "test" if split == "test" else "train",
            image_size=image_size,
            workers=workers,
            limit=limit,
            seed=seed,
            follow_external_links=follow_links,
            resize=resize,
        )
    if split == "test":
        return None
    train = root / "train" if (root / "train").is_dir() else root
    return load_image_folder(
        train,
        image_size=image_size,
        workers=workers,
        limit=limit,
        seed=seed,
        follow_external_links=follow_links,
        resize=resize,
    )


def load_dataset(
    name: str,
    split: str,
    data_dir: Path | None,
    download: bool = False,
    image_size: int | None = None,
    limit: int | None = None,
    seed: int = 0,
    workers: int = 0,
    spirograph_size: int | None = None,
    spirograph_test_size: int | None = None,
    follow_links: bool = False,
    resize: str = "crop",
) -> ImageStore | None:
    """Load ``split`` (``train``, ``train_labeled`` or ``test``) of dataset ``name``.

    ``train_labeled`` differs from ``train`` only for STL-10 (whose ``train`` adds the 100,000
    unlabeled images). ``limit`` keeps a stratified subset of that many images (random when
    unlabeled), reproducible by ``seed``. Returns ``None`` when the dataset has no such split
    (an ``imagefolder`` without ``test/``/``val/``). An ``imagefolder`` without ``image_size`` keeps
    its images' size when they all share one, else both splits get the standard size picked from the
    train split (:func:`simclr.data.imagefolder.default_image_size`); ``resize`` says how an image folder's
    images become squares (:data:`simclr.data.decode.RESIZE_MODES`; other datasets are centre-cropped).

    Spirograph: 100,000 train / 20,000 test images rendered from seeds 3 and 4; ``spirograph_size``
    sets the train size and ``spirograph_test_size`` the test size (default train // 5); ``image_size`` sets
    the render size (default 32).
    """
    _check_name(name)
    if name == PYTHON_DATASET:
        raise UserError(
            "this run trained on a Python Dataset, which no command can read from the run directory; from Python, "
            "pass it again (simclr.pretrain(config, dataset=...)) or evaluate with simclr.load_backbone and "
            "simclr.extract_features (docs/API.md)"
        )
    if split not in SPLITS:
        raise UserError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    if image_size is not None and image_size <= 0:
        raise UserError(f"image size must be positive, got {image_size}; pass e.g. --image-size 64")
    if limit is not None and limit <= 0:
        raise UserError(f"limit must be a positive number of images, got {limit}; pass e.g. --limit 1000")
    if name == "spirograph":
        if spirograph_size is not None and spirograph_size < 5:
            raise UserError(f"spirograph size must be >= 5, got {spirograph_size}; pass e.g. --spirograph-size 10000")
        n_train = spirograph_size or SPIROGRAPH_TRAIN_SIZE
        n_test = spirograph_test_size or max(1, n_train // 5)
        n = n_test if split == "test" else n_train
        data_seed = SPIROGRAPH_SEED + (1 if split == "test" else 0)
        return make_spirograph_store(n, data_seed, image_size or 32, limit=limit, limit_seed=seed)
    if name == "packed" or (name == "imagefolder" and data_dir is not None and is_packed(data_dir)):
        return _load_packed_in_memory(split, data_dir, image_size, limit, workers)
    if name == "imagefolder":
        return _load_imagefolder(split, data_dir, image_size, limit, seed, workers, follow_links, resize)
    if name in IMAGENET_SUBSETS:
        return load_imagenet(
            split,
            data_dir,
            image_size=image_size or IMAGENET_IMAGE_SIZE,
            limit=limit,
            seed=seed,
            workers=workers,
            subset=IMAGENET_SUBSETS[name],
            download=download,
        )
    loader = LOADERS[name]
    return loader(
        split,
        data_dir,
        download=download,
        image_size=image_size or DEFAULT_IMAGE_SIZES[name],
        workers=workers,
        limit=limit,
        seed=seed,
    )


def _load_packed_in_memory(
    split: str, data_dir: Path | None, image_size: int | None, limit: int | None, workers: int
) -> ImageStore | None:
    """A packed split decoded into memory (its centre views; the first ``limit`` samples, a random subset):
    for the commands that hold their data (the autoencoder of ``train-ae``). Pretraining and evaluation
    stream packed data instead (:meth:`simclr.data.source.DataSource.streamed`)."""
    if data_dir is None:
        raise UserError("a packed dataset needs its folder; pass --data-dir OUT of 'simclr data pack'")
    folder = find_packed_split(Path(data_dir), "test" if split == "test" else "train")
    if folder is None:
        if split == "test":
            return None
        raise UserError(f"{data_dir} holds no packed dataset; create one with 'simclr data pack SRC {data_dir}'")
    packed = PackedSplit(folder)
    size = image_size or packed_image_size(Path(data_dir))
    fitting = max(1, IN_MEMORY_PACKED_BYTES // (3 * size * size))
    count = min(limit or len(packed), len(packed))
    if count > fitting:
        log.warning(
            "%s split of %s: %d images at %d px would take %.1f GB in memory; evaluating on the first %d "
            "(a random subset: packs are stored shuffled); --limit-%s-images N to choose",
            split, folder, count, size, count * 3 * size * size / 2**30, fitting,
            "test" if split == "test" else "train",
        )  # fmt: skip
        count = fitting
    return packed.load_first(count, size, workers)
