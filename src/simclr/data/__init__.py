"""Datasets held in memory as uint8 tensors; views are made later, on the device.

A dataset split is an :class:`ImageStore` (``images`` uint8 ``(N, 3, H, W)``, ``labels`` with -1
for unlabeled, optional regression ``factors``); :class:`InMemoryBatchLoader` draws reproducible,
resumable, rank-sharded batches from it by index.
"""

from simclr.data.decode import (
    IMAGE_EXTENSIONS,
    ImageDecodeError,
    decode_image,
    is_image_file,
    load_image,
    resize_center_crop,
    to_rgb_array,
)
from simclr.data.imagefolder import (
    decode_files,
    find_split_folder,
    folder_class_names,
    has_split_layout,
    list_image_folder,
    load_image_folder,
    load_split_folder,
)
from simclr.data.imagenet import (
    IMAGENET100_WNIDS,
    IMAGENET_IMAGE_SIZE,
    IMAGENET_SUBSETS,
    imagenet_download_error,
    list_imagenet,
    load_imagenet,
    read_val_ground_truth,
)
from simclr.data.loader import InMemoryBatchLoader, epoch_permutation
from simclr.data.registry import (
    DATASET_NAMES,
    SPIROGRAPH_TEST_SIZE,
    SPIROGRAPH_TRAIN_SIZE,
    DatasetInfo,
    dataset_info,
    load_dataset,
)
from simclr.data.source import DataSource
from simclr.data.spirograph import (
    GENERATIVE_NAMES,
    GENERATIVE_RANGES,
    NUISANCE_NAMES,
    NUISANCE_RANGES,
    SPIROGRAPH_SEED,
    SpirographViews,
    make_spirograph_store,
    render_spirograph,
    sample_generative,
    sample_nuisance,
)
from simclr.data.store import ImageStore, concat_stores, report_skipped
from simclr.data.streaming import PackedStore, SplitStore
from simclr.data.subset import split_train_val, stratified_subset
from simclr.data.torchvision_sets import (
    DEFAULT_IMAGE_SIZES,
    LISTED_SETS,
    load_cifar10,
    load_cifar100,
    load_fgvc_aircraft,
    load_imagenette,
    load_listed_set,
    load_mnist,
    load_mnist_family,
    load_stl10,
    resize_images,
)

__all__ = [
    "DATASET_NAMES",
    "DEFAULT_IMAGE_SIZES",
    "GENERATIVE_NAMES",
    "GENERATIVE_RANGES",
    "IMAGE_EXTENSIONS",
    "IMAGENET100_WNIDS",
    "IMAGENET_IMAGE_SIZE",
    "IMAGENET_SUBSETS",
    "LISTED_SETS",
    "NUISANCE_NAMES",
    "NUISANCE_RANGES",
    "SPIROGRAPH_SEED",
    "SPIROGRAPH_TEST_SIZE",
    "SPIROGRAPH_TRAIN_SIZE",
    "DataSource",
    "DatasetInfo",
    "ImageDecodeError",
    "ImageStore",
    "PackedStore",
    "SplitStore",
    "InMemoryBatchLoader",
    "SpirographViews",
    "concat_stores",
    "dataset_info",
    "decode_files",
    "decode_image",
    "epoch_permutation",
    "find_split_folder",
    "folder_class_names",
    "has_split_layout",
    "imagenet_download_error",
    "is_image_file",
    "list_image_folder",
    "list_imagenet",
    "load_cifar10",
    "load_cifar100",
    "load_dataset",
    "load_fgvc_aircraft",
    "load_image",
    "load_image_folder",
    "load_imagenet",
    "load_imagenette",
    "load_listed_set",
    "load_mnist",
    "load_mnist_family",
    "load_split_folder",
    "load_stl10",
    "make_spirograph_store",
    "read_val_ground_truth",
    "render_spirograph",
    "resize_center_crop",
    "report_skipped",
    "resize_images",
    "sample_generative",
    "sample_nuisance",
    "split_train_val",
    "stratified_subset",
    "to_rgb_array",
]
