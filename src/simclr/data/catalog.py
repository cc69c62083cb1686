"""The dataset catalog: one entry per dataset, and the one entry point that loads any of them.

An entry (:class:`DatasetEntry`) holds everything simclr knows about a dataset: its default image size, its
classes, whether it is labelled, its per-channel mean and std, whether its targets are regression factors,
its loader and which of its own splits make ours (:class:`~simclr.data.request.SplitPolicy`). Adding a
dataset is adding an entry (and its loader function when it is read in a new way); the README's datasets
table is :func:`datasets_table` of the catalog (a test checks they agree). The colour-jitter strength and
blur defaults depend on the image size only, not on the dataset (:func:`dataset_info`).

:func:`load_dataset` resolves the image size once (:func:`resolve_image_size`) and the dataset's splits,
then hands its loader one :class:`~simclr.data.request.LoadRequest`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from simclr.data.imagefolder import load_imagefolder
from simclr.data.imagenet import IMAGENET100_WNIDS, IMAGENET_IMAGE_SIZE, load_imagenet
from simclr.data.listed_sets import HELD_OUT_TEST_FRACTION, LISTED_SETS, load_listed_set
from simclr.data.pack_format import is_packed
from simclr.data.request import LoadRequest, SplitPolicy, check_split
from simclr.data.spirograph import SPIROGRAPH_IMAGE_SIZE, load_spirograph
from simclr.data.store import ImageStore
from simclr.data.streaming import SplitImages, load_packed_in_memory
from simclr.data.torchvision_sets import load_cifar, load_fgvc_aircraft, load_imagenette, load_mnist_family, load_stl10
from simclr.errors import UserError

__all__ = [
    "CATALOG",
    "DATASET_NAMES",
    "PYTHON_DATASET",
    "DatasetEntry",
    "DatasetInfo",
    "catalog_entry",
    "dataset_info",
    "datasets_table",
    "load_dataset",
    "resolve_image_size",
]

Channels = tuple[float, float, float]
Loader = Callable[[LoadRequest], ImageStore | None]

IMAGENET_MEAN: Channels = (0.485, 0.456, 0.406)
IMAGENET_STD: Channels = (0.229, 0.224, 0.225)
_OFFICIAL = SplitPolicy()  # the source's own train / test
_HELD_OUT = SplitPolicy((), (), held_out=HELD_OUT_TEST_FRACTION)


@dataclass(frozen=True)
class DatasetEntry:
    """One dataset of the catalog.

    ``image_size`` None: the images keep their own size and the classes are those found in the data (an image
    folder, packed data, a Python Dataset); ``classes`` None otherwise means unlabelled. ``load`` None: no
    command can load the dataset by name. ``source`` says where the images come from, for the README.
    """

    name: str
    source: str
    image_size: int | None
    classes: int | None
    load: Loader | None
    mean: Channels = IMAGENET_MEAN  # photographs: ImageNet's statistics unless --standardize measures them
    std: Channels = IMAGENET_STD
    splits: SplitPolicy = _OFFICIAL
    regression: bool = False  # Spirograph: generative factors are the targets (and its views re-render them)

    @property
    def labelled(self) -> bool:
        return self.classes is not None


def _load_folder_or_pack(request: LoadRequest) -> ImageStore | None:
    """An image folder, or the output of ``simclr data pack`` given as one (decoded into memory)."""
    if request.data_dir is not None and is_packed(request.data_dir):
        return load_packed_in_memory(request)
    return load_imagefolder(request)


def _listed(name: str, source: str, image_size: int, classes: int, splits: SplitPolicy) -> DatasetEntry:
    return DatasetEntry(name, source, image_size, classes, partial(load_listed_set, LISTED_SETS[name]), splits=splits)


# a Dataset passed from Python (simclr.pretrain(config, dataset=...)): a run's config names it so, but no
# command can load it by name
PYTHON_DATASET = "python"

CATALOG: dict[str, DatasetEntry] = {
    entry.name: entry
    for entry in (
        DatasetEntry(
            "spirograph",
            "generated (Foster et al. 2020); 4 factors as regression targets",
            SPIROGRAPH_IMAGE_SIZE,
            None,
            load_spirograph,
            mean=(0.5, 0.5, 0.5),
            std=(0.5, 0.5, 0.5),
            splits=SplitPolicy((), (), described="100,000 / 20,000 rendered"),
            regression=True,
        ),
        DatasetEntry(
            "cifar10",
            "CIFAR10",
            32,
            10,
            partial(load_cifar, "cifar10"),
            mean=(0.4914, 0.4822, 0.4465),
            std=(0.2470, 0.2435, 0.2616),
        ),
        DatasetEntry(
            "cifar100",
            "CIFAR100",
            32,
            100,
            partial(load_cifar, "cifar100"),
            mean=(0.5071, 0.4865, 0.4409),
            std=(0.2673, 0.2564, 0.2762),
        ),
        DatasetEntry(
            "stl10",
            "STL10",
            96,
            10,
            load_stl10,
            mean=(0.4409, 0.4279, 0.3868),
            std=(0.2309, 0.2262, 0.2237),
            splits=SplitPolicy(("train", "unlabeled"), ("test",), labelled_train=("train",)),
        ),
        DatasetEntry(
            "mnist",
            "MNIST (padded to 32 px)",
            32,
            10,
            partial(load_mnist_family, "mnist"),
            mean=(0.1307,) * 3,
            std=(0.3081,) * 3,
        ),
        DatasetEntry("imagenette", "Imagenette", 128, 10, load_imagenette, splits=SplitPolicy(("train",), ("val",))),
        DatasetEntry(
            "imagenet",
            "ILSVRC2012 (your own copy)",
            IMAGENET_IMAGE_SIZE,
            1000,
            load_imagenet,
            splits=SplitPolicy(("train",), ("val",)),
        ),
        DatasetEntry(
            "imagenet100",
            "ILSVRC2012, the 100 classes of CMC",
            IMAGENET_IMAGE_SIZE,
            100,
            partial(load_imagenet, subset=IMAGENET100_WNIDS),
            splits=SplitPolicy(("train",), ("val",)),
        ),
        DatasetEntry(
            "fgvc-aircraft",
            "FGVCAircraft (manufacturers, banner cut off)",
            128,
            30,
            load_fgvc_aircraft,
            splits=SplitPolicy(("trainval",), ("test",)),
        ),
        # 28-px statistics, as mnist's (the padding to 32 px lowers the mean a little).
        DatasetEntry(
            "fashion-mnist",
            "FashionMNIST",
            32,
            10,
            partial(load_mnist_family, "fashion-mnist"),
            mean=(0.2860,) * 3,
            std=(0.3530,) * 3,
        ),
        DatasetEntry(
            "emnist",
            "EMNIST `byclass` (glyphs turned upright)",
            32,
            62,
            partial(load_mnist_family, "emnist"),
            mean=(0.1736,) * 3,
            std=(0.3317,) * 3,
        ),
        # Photographs of varied size: 128 px, as imagenette and fgvc-aircraft.
        _listed("caltech101", "Caltech101 (background class dropped)", 128, 101, _HELD_OUT),
        _listed("caltech256", "Caltech256 (with clutter)", 128, 257, _HELD_OUT),
        _listed("dtd", "DTD, partition 1", 128, 47, SplitPolicy(("train", "val"), ("test",))),
        _listed("country211", "Country211", 128, 211, SplitPolicy(("train", "valid"), ("test",))),
        _listed("food101", "Food101", 128, 101, _OFFICIAL),
        _listed("eurosat", "EuroSAT (RGB)", 64, 10, _HELD_OUT),  # Sentinel-2 tiles are 64 x 64: kept native
        _listed("flowers102", "Flowers102", 128, 102, SplitPolicy(("train", "val"), ("test",))),
        # signs are 15-250 px, most under 64; 32 px is the usual benchmark size
        _listed("gtsrb", "GTSRB", 32, 43, _OFFICIAL),
        _listed("oxford-iiit-pet", "OxfordIIITPet (breeds)", 128, 37, SplitPolicy(("trainval",), ("test",))),
        DatasetEntry(
            "imagefolder",
            "your folder of images (class sub-folders: labelled)",
            None,
            None,
            _load_folder_or_pack,
            splits=SplitPolicy(described="train/ (or the whole folder) / test/ or val/ if there"),
        ),
        DatasetEntry(
            "packed",
            "the OUT folder of `simclr data pack`",
            None,
            None,
            load_packed_in_memory,
            splits=SplitPolicy(described="OUT/train / OUT/test"),
        ),
        DatasetEntry(PYTHON_DATASET, "a map-style Dataset passed from Python", None, None, None),
    )
}
DATASET_NAMES: tuple[str, ...] = tuple(name for name, entry in CATALOG.items() if entry.load is not None)


def catalog_entry(name: str) -> DatasetEntry:
    """The entry of dataset ``name`` (also ``python``); an unknown name is a UserError listing the known ones."""
    if name not in CATALOG:
        raise UserError(f"unknown dataset {name!r}; use one of {', '.join(DATASET_NAMES)}")
    return CATALOG[name]


def resolve_image_size(name: str, image_size: int | None) -> int | None:
    """The side the images of dataset ``name`` are used at: ``image_size`` when given, else the dataset's
    default; None for a dataset whose images keep their own size (an image folder, packed data)."""
    entry = catalog_entry(name)
    if image_size is not None and image_size <= 0:
        raise UserError(f"image size must be positive, got {image_size}; pass e.g. --image-size 64")
    return image_size or entry.image_size


@dataclass(frozen=True)
class DatasetInfo:
    """Constants of a dataset as used for training at ``image_size``."""

    name: str
    image_size: int
    num_classes: int | None
    labelled: bool
    mean: Channels
    std: Channels
    jitter_strength: float  # 0.5 for CIFAR-size data (<=64px), 1.0 for larger
    blur: bool  # False for <=64px
    regression: bool  # True for spirograph


def dataset_info(name: str, image_size: int | None = None, *, store: SplitImages | None = None) -> DatasetInfo:
    """Constants of dataset ``name`` at ``image_size`` (default: the dataset's usual size).

    A dataset without a size or classes of its own (``imagefolder``) takes them from the loaded ``store``;
    without ``image_size`` and ``store`` its ``image_size`` is 0 ("native, unknown until loaded") and
    ``num_classes`` is None.
    """
    entry = catalog_entry(name)
    if image_size is not None and image_size <= 0:
        raise UserError(f"image size must be positive, got {image_size}; pass e.g. --image-size 64")
    size = int(image_size or (store.image_size if store is not None else (entry.image_size or 0)))
    labelled, num_classes = entry.labelled, entry.classes
    if entry.image_size is None and store is not None:
        labelled = store.has_labels
        num_classes = len(store.class_names) if labelled else None
    large = size > 64
    return DatasetInfo(
        name=name,
        image_size=size,
        num_classes=num_classes,
        labelled=labelled,
        mean=entry.mean,
        std=entry.std,
        jitter_strength=1.0 if large else 0.5,
        blur=large,
        regression=entry.regression,
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

    ``train_labeled`` differs from ``train`` only where a dataset adds unlabelled images to its training
    split (STL-10). ``limit`` keeps a stratified subset of that many images (random when unlabeled),
    reproducible by ``seed``. Returns ``None`` when the dataset has no such split (an ``imagefolder`` without
    ``test/``/``val/``). An ``imagefolder`` without ``image_size`` keeps its images' size when they all share
    one, else both splits get the standard size picked from the train split
    (:func:`simclr.data.image_sizes.default_image_size`); ``resize`` says how an image folder's images become
    squares (:data:`simclr.data.reading.RESIZE_MODES`; other datasets are centre-cropped).

    Spirograph: 100,000 train / 20,000 test images rendered from seeds 3 and 4; ``spirograph_size``
    sets the train size and ``spirograph_test_size`` the test size (default train // 5); ``image_size`` sets
    the render size (default 32).
    """
    entry = catalog_entry(name)
    if entry.load is None:
        raise UserError(
            "this run trained on a Python Dataset, which no command can read from the run directory; from Python, "
            "pass it again (simclr.pretrain(config, dataset=...)) or evaluate with simclr.load_backbone and "
            "simclr.extract_features (docs/API.md)"
        )
    check_split(split)
    size = resolve_image_size(name, image_size)
    if limit is not None and limit <= 0:
        raise UserError(f"limit must be a positive number of images, got {limit}; pass e.g. --limit 1000")
    request = LoadRequest(
        split,
        data_dir,
        download=download,
        image_size=size,
        limit=limit,
        seed=seed,
        workers=workers,
        follow_links=follow_links,
        resize=resize,
        source_splits=entry.splits.source_splits(split),
        generated_train_size=spirograph_size,
        generated_test_size=spirograph_test_size,
    )
    return entry.load(request)


def datasets_table() -> str:
    """The datasets table of docs/DATASETS.md (Markdown), one row per dataset a command can load by name."""
    rows = ["| name | source | classes | size | train / test |", "|---|---|---|---|---|"]
    for name in DATASET_NAMES:
        entry = CATALOG[name]
        from_data = entry.image_size is None  # sizes and classes found in the data
        classes = str(entry.classes) if entry.classes is not None else ("from the data" if from_data else "-")
        size = "from the data" if from_data else str(entry.image_size)
        rows.append(f"| `{name}` | {entry.source} | {classes} | {size} | {entry.splits.describe()} |")
    return "\n".join(rows) + "\n"
