"""Streaming packed data: the views cut per image follow the in-memory path's distribution, each process
reads its own shards, and samples are reproducible by (seed, epoch, sample)."""

from __future__ import annotations

import math
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from litdata import StreamingDataLoader, StreamingDataset
from PIL import Image

from simclr.data.pack_format import find_packed_split, is_packed
from simclr.data.pack_settings import PackConfig
from simclr.data.packed import pack_dataset
from simclr.data.streaming import PackedSplit, decode_stored
from simclr.views import ops
from simclr.views.config import ViewConfig
from simclr.views.params import sample_crop_boxes, sample_view_params
from simclr.views.per_image import center_view, crop_views, view_generator_for_sample

WORLD = 2
IMAGES = 48


@pytest.fixture(scope="module")
def packed_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """48 images of 3 classes and different sizes, packed."""
    root = tmp_path_factory.mktemp("streaming")
    rng = np.random.default_rng(0)
    for i in range(IMAGES):
        height, width = 40 + (i % 5) * 7, 60 - (i % 4) * 5
        path = root / "folder" / f"class{i % 3}" / f"{i:03d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8)).save(path)
    pack_dataset(str(root / "folder"), root / "packed", PackConfig(workers=1))
    return root / "packed"


def _box_statistics(boxes: torch.Tensor, source_hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    height, width = source_hw
    area = (boxes[:, 2] * boxes[:, 3]).numpy()  # fraction of the source area
    log_ratio = torch.log((boxes[:, 3] * width) / (boxes[:, 2] * height)).numpy()
    return area, log_ratio


@pytest.mark.parametrize("source_hw", [(300, 200), (64, 64), (50, 400)])
def test_crop_parameters_follow_the_in_memory_distribution(source_hw: tuple[int, int]) -> None:
    config = ViewConfig(size=32)
    count = 20_000
    streamed = sample_crop_boxes(count, source_hw, config, torch.Generator().manual_seed(1))
    in_memory = sample_view_params(count, source_hw, config, torch.Generator().manual_seed(2)).crop_boxes.double()
    quantiles = [0.05, 0.25, 0.5, 0.75, 0.95]
    for a, b in zip(_box_statistics(streamed, source_hw), _box_statistics(in_memory, source_hw), strict=True):
        assert np.quantile(a, quantiles) == pytest.approx(np.quantile(b, quantiles), abs=0.03)
        assert a.mean() == pytest.approx(b.mean(), abs=0.01)
    area, log_ratio = _box_statistics(streamed, source_hw)
    fitted = area < 0.999  # boxes that are not the whole-image fallback follow the paper's ranges
    assert area[fitted].min() >= 0.08 - 1e-6 and area.max() <= 1 + 1e-6
    assert np.abs(log_ratio[fitted]).max() <= math.log(4 / 3) + 1e-6


def test_crops_cut_the_sampled_boxes_at_full_resolution_close_to_the_device_operator() -> None:
    # a smooth image: the two resamplers (Pillow's antialiased bilinear, the device's roi_align) agree on it
    yy, xx = np.mgrid[0:90, 0:70]
    pixels = np.stack([yy * 2.5, xx * 3.0, (yy + xx) * 1.5], axis=-1).clip(0, 255).astype(np.uint8)
    image = Image.fromarray(pixels)
    config = ViewConfig(size=24)
    views = crop_views(image, 3, config, torch.Generator().manual_seed(5))
    boxes = sample_crop_boxes(3, (90, 70), config, torch.Generator().manual_seed(5))
    assert views.shape == (3, 3, 24, 24) and views.dtype == torch.uint8
    for view, (top, left, h, w) in zip(views, boxes.tolist(), strict=True):
        exact = image.resize(
            (24, 24), Image.Resampling.BILINEAR, box=(left * 70, top * 90, (left + w) * 70, (top + h) * 90)
        )
        assert torch.equal(view, torch.from_numpy(np.array(exact)).permute(2, 0, 1))
    source = torch.from_numpy(pixels).permute(2, 0, 1)[None].float()
    device = ops.resized_crop(source, boxes.float(), 24, torch.zeros(3, dtype=torch.long))
    assert (views.float() - device).abs().mean() < 2.0  # grey levels of 255
    center = center_view(image, 70)
    assert torch.equal(center, torch.from_numpy(pixels[10:80]).permute(2, 0, 1))  # a centre square at its size


def test_views_are_a_function_of_seed_epoch_and_sample(packed_folder: Path) -> None:
    split = PackedSplit(packed_folder / "train")
    config = ViewConfig(size=16)
    dataset = split.views(2, config, seed=3)
    first, again = dataset[5], dataset[5]
    assert first["views"].shape == (2, 3, 16, 16) and first["index"] == 5
    assert torch.equal(first["views"], again["views"])
    assert first["labels"] == int(split.labels[5])
    dataset.current_epoch = 2
    assert not torch.equal(dataset[5]["views"], first["views"])
    other_seed = split.views(2, config, seed=4)
    assert not torch.equal(other_seed[5]["views"], first["views"])
    generator = view_generator_for_sample(3, 1, 5)  # epoch 1 is litdata's first
    image = decode_stored(StreamingDataset(str(split.path))[5]["image"])
    assert torch.equal(crop_views(image, 2, config, generator), first["views"])


def test_packed_layout_is_recognised(packed_folder: Path) -> None:
    assert is_packed(packed_folder) and is_packed(packed_folder / "train")
    assert find_packed_split(packed_folder, "test") is None
    assert not is_packed(packed_folder.parent / "folder")
    first = PackedSplit(packed_folder / "train").load_first(10, 20)
    assert first.images.shape == (10, 3, 20, 20) and first.class_names == ["class0", "class1", "class2"]


def _read_one_epoch(rank: int, init_file: str, packed: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD, timeout=timedelta(seconds=60)
    )
    try:
        dataset = PackedSplit(Path(packed)).views(2, ViewConfig(size=8), seed=0)
        seen = [int(i) for batch in StreamingDataLoader(dataset, batch_size=4, num_workers=0) for i in batch["index"]]
        torch.save(torch.tensor(seen), Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available")
def test_two_processes_read_disjoint_shards_that_cover_the_dataset(packed_folder: Path, tmp_path: Path) -> None:
    mp.spawn(
        _read_one_epoch,
        args=(str(tmp_path / "init"), str(packed_folder / "train"), str(tmp_path)),
        nprocs=WORLD,
        join=True,
    )
    seen = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True).tolist() for r in range(WORLD)]
    assert len(seen[0]) == len(seen[1]) == IMAGES // WORLD  # 48 = 2 ranks x 6 batches of 4: nothing dropped
    assert not set(seen[0]) & set(seen[1])
    assert sorted(seen[0] + seen[1]) == list(range(IMAGES))


def test_a_packed_dataset_at_a_url_reads_its_description_through_litdatas_downloader(
    packed_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The URL code path, with litdata's downloader replaced by a copy from the local pack (the real store is
    tests/data/test_object_storage.py's)."""
    from typing import BinaryIO

    import litdata.streaming.downloader as downloader_module

    from simclr.data.object_storage import find_remote_split, is_url

    class LocalCopy:
        def __init__(self, remote_dir: str, cache_dir: str, chunks: list[object], *args: object) -> None:
            pass

        def download_fileobj(self, remote: str, fileobj: BinaryIO) -> None:
            source = packed_folder / remote.removeprefix("s3://bucket/data/")
            if not source.is_file():
                raise FileNotFoundError(remote)
            fileobj.write(source.read_bytes())

    monkeypatch.setattr(downloader_module, "get_downloader", LocalCopy)
    monkeypatch.setenv("SIMCLR_CACHE", str(tmp_path))
    assert is_url("s3://bucket/data") and not is_url(packed_folder)
    assert find_remote_split("s3://bucket/data", "train") == "s3://bucket/data/train"
    assert find_remote_split("s3://bucket/data", "test") is None
    split = PackedSplit("s3://bucket/data/train")
    local = PackedSplit(packed_folder / "train")
    assert split.info == local.info and torch.equal(split.labels, local.labels)
    assert split.sidecars.is_relative_to(tmp_path)


@pytest.fixture(scope="module")
def packed_jpegs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Smooth JPEG photos-like images of different sizes, packed (stored byte for byte)."""
    root = tmp_path_factory.mktemp("jpegs")
    for i in range(6):
        height, width = 90 + 17 * i, 140 - 11 * i
        y, x = np.mgrid[0:height, 0:width]
        rgb = np.stack([128 + 100 * np.sin(x / (9 + i)), 128 + 100 * np.cos(y / 13), (x + y) % 256], axis=-1)
        path = root / "folder" / f"class{i % 2}" / f"{i}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rgb.astype(np.uint8)).save(path, quality=95)
    pack_dataset(str(root / "folder"), root / "packed", PackConfig(workers=1))
    return root / "packed"


def test_device_decoding_cuts_the_boxes_the_workers_would_cut(packed_jpegs: Path, packed_folder: Path) -> None:
    """--decode device: the loader only draws the boxes (the same as the CPU path's for each sample), the
    batch is decoded by torchvision (nvJPEG on CUDA; here its CPU decoder) and cropped on the device."""
    from simclr.data.streaming import collate_encoded, decode_on_device
    from simclr.views.params import sample_crop_boxes
    from simclr.views.per_image import crop_views_on_device

    split = PackedSplit(packed_jpegs / "train")
    config = ViewConfig(size=24)
    encoded = split.encoded(2, config, seed=3)
    cpu = split.views(2, config, seed=3)
    samples = [encoded[i] for i in range(len(split))]
    batch = collate_encoded(samples)
    images = decode_on_device(batch["encoded"], torch.device("cpu"))
    views = crop_views_on_device(images, batch["boxes"], config.size)
    assert views.shape == (6, 2, 3, 24, 24) and views.dtype == torch.uint8
    for i, sample in enumerate(samples):
        stored = decode_stored(StreamingDataset(str(split.path))[i]["image"])
        assert images[i].shape == (3, stored.size[1], stored.size[0])
        assert torch.equal(images[i], torch.from_numpy(np.asarray(stored).copy()).permute(2, 0, 1))
        generator = view_generator_for_sample(3, 1, i)
        assert torch.equal(sample["boxes"], sample_crop_boxes(2, (stored.size[1], stored.size[0]), config, generator))
        # the same crops as the workers' (boxes rounded to whole pixels): a couple of grey levels apart
        difference = (views[i].float() - cpu[i]["views"].float()).abs().mean()
        assert difference < 3.0, (i, float(difference))
    # stored PNGs decode as decode_stored does
    png = PackedSplit(packed_folder / "train").encoded(2, config, seed=0)[0]["encoded"]
    decoded = decode_on_device([png], torch.device("cpu"))[0]
    assert torch.equal(
        decoded, torch.from_numpy(np.asarray(decode_stored(png.numpy().tobytes())).copy()).permute(2, 0, 1)
    )
