"""Image-folder loading: layouts, labels, broken files, sizes, errors, real CIFAR-10 JPEGs, hostile folders."""

from __future__ import annotations

import contextlib
import doctest
import errno
import io
import logging
import os
import signal
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from simclr.cli import main
from simclr.data import image_sizes
from simclr.data.catalog import load_dataset
from simclr.data.folder_listing import folder_class_names, list_image_folder, scan_image_folder
from simclr.data.image_sizes import default_image_size, estimate_folder
from simclr.data.imagefolder import load_image_folder, load_split_folder
from simclr.data.parallel_decode import decode_files
from simclr.data.store import printable_name, report_skipped
from simclr.errors import UserError


def _png(path: Path, color: tuple[int, int, int], size: tuple[int, int] = (8, 8)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)
    return path


def _class_color(k: int) -> tuple[int, int, int]:
    return (10 * k + 5, 100, 200 - 10 * k)


def _make_classes(root: Path, names: list[str], per_class: int = 3) -> None:
    # Colour encodes the (sorted) class index so labels can be checked from pixels.
    for k, name in enumerate(sorted(names)):
        for i in range(per_class):
            _png(root / name / f"{i:03d}.png", _class_color(k))


def test_class_folders_give_sorted_labels(tmp_path: Path) -> None:
    _make_classes(tmp_path, ["zebra", "ant", "moose"])
    store = load_image_folder(tmp_path)
    assert store.class_names == ["ant", "moose", "zebra"]
    assert store.images.shape == (9, 3, 8, 8) and store.images.dtype == torch.uint8
    assert store.labels.dtype == torch.int64
    assert store.labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert store.has_labels
    for img, lab in zip(store.images, store.labels.tolist(), strict=True):
        assert tuple(img[:, 0, 0].tolist()) == _class_color(lab)
    assert store.file_names is not None and store.file_names[0] == "ant/000.png"
    assert store.skipped == []


def test_extensions_case_insensitive_hidden_and_non_images_ignored(tmp_path: Path) -> None:
    _png(tmp_path / "a" / "x.PNG", (1, 2, 3))
    _png(tmp_path / "a" / "y.png", (1, 2, 3))
    (tmp_path / "b").mkdir()
    Image.new("RGB", (8, 8), (1, 2, 3)).save(tmp_path / "b" / "z.JpG", format="JPEG")
    (tmp_path / "a" / "notes.txt").write_text("hello")
    (tmp_path / "a" / "._x.PNG").write_bytes(b"\x00\x05\x16\x07")  # macOS resource fork
    (tmp_path / ".cache").mkdir()
    _png(tmp_path / ".cache" / "thumb.png", (9, 9, 9))
    store = load_image_folder(tmp_path)
    assert store.class_names == ["a", "b"]
    assert sorted(store.file_names or []) == ["a/x.PNG", "a/y.png", "b/z.JpG"]
    assert store.skipped == []


def test_nested_images_inside_class_folders(tmp_path: Path) -> None:
    _png(tmp_path / "cat" / "1.png", (0, 0, 0))
    _png(tmp_path / "cat" / "deep" / "2.png", (0, 0, 0))
    _png(tmp_path / "dog" / "3.png", (0, 0, 0))
    store = load_image_folder(tmp_path)
    assert store.class_names == ["cat", "dog"]
    assert store.labels.tolist() == [0, 0, 1]


def test_flat_folder_is_unlabeled(tmp_path: Path) -> None:
    for i in range(4):
        _png(tmp_path / f"{i}.png", (i, i, i))
    store = load_image_folder(tmp_path)
    assert store.labels.tolist() == [-1] * 4
    assert store.class_names == [] and not store.has_labels


def test_nested_folder_without_class_structure_is_unlabeled(tmp_path: Path) -> None:
    _png(tmp_path / "2019" / "jan" / "a.png", (0, 0, 0))
    _png(tmp_path / "2019" / "feb" / "b.png", (0, 0, 0))
    _png(tmp_path / "2020" / "mar" / "c.png", (0, 0, 0))
    store = load_image_folder(tmp_path)
    assert len(store) == 3 and store.labels.tolist() == [-1, -1, -1]
    assert store.file_names == ["2019/feb/b.png", "2019/jan/a.png", "2020/mar/c.png"]
    # A single sub-folder is not a class structure either.
    single = tmp_path / "single"
    _png(single / "images" / "x.png", (0, 0, 0))
    assert load_image_folder(single).labels.tolist() == [-1]
    # Images at the top level next to sub-folders: unlabeled, recursive.
    mixed = tmp_path / "mixed"
    _png(mixed / "top.png", (0, 0, 0))
    _make_classes(mixed, ["a", "b"], per_class=1)
    store = load_image_folder(mixed)
    assert len(store) == 3 and not store.has_labels


def _write_broken(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "text.png").write_text("this is not a PNG")
    good = folder / "good_for_truncation.jpg"
    arr = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    Image.fromarray(arr).save(good, quality=90)
    data = good.read_bytes()
    (folder / "truncated.jpg").write_bytes(data[: len(data) // 3])
    good.unlink()


@pytest.mark.parametrize("workers", [0, 2])
def test_corrupt_files_are_skipped_counted_and_listed(tmp_path: Path, workers: int) -> None:
    _make_classes(tmp_path, ["a", "b"], per_class=2)
    _write_broken(tmp_path / "b")
    store = load_image_folder(tmp_path, workers=workers)
    assert len(store) == 4
    assert store.labels.tolist() == [0, 0, 1, 1]
    assert sorted(p for p, _ in store.skipped) == ["b/empty.jpg", "b/text.png", "b/truncated.jpg"]
    assert all(reason for _, reason in store.skipped)
    assert all("empty" not in f for f in store.file_names or [])


def test_folder_with_only_broken_files_is_user_error(tmp_path: Path) -> None:
    _write_broken(tmp_path)
    with pytest.raises(UserError, match="no readable image") as info:
        load_image_folder(tmp_path)
    assert str(tmp_path) in str(info.value) and "--data-dir" in str(info.value)


def test_empty_folder_is_user_error(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "readme.txt").write_text("no images here")
    with pytest.raises(UserError, match="no image files") as info:
        load_image_folder(tmp_path)
    assert str(tmp_path) in str(info.value) and "--data-dir" in str(info.value)


def test_missing_folder_is_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="does not exist") as info:
        load_image_folder(tmp_path / "nowhere")
    assert "--data-dir" in str(info.value)
    file = tmp_path / "file.png"
    _png(file, (0, 0, 0))
    with pytest.raises(UserError, match="not a folder"):
        load_image_folder(file)


def test_native_size_kept_when_uniform(tmp_path: Path) -> None:
    for i in range(3):
        _png(tmp_path / f"{i}.png", (0, 0, 0), size=(12, 10))
    store = load_image_folder(tmp_path)
    assert store.images.shape == (3, 3, 10, 12)


def test_varying_sizes_resized_to_given_image_size(tmp_path: Path) -> None:
    _png(tmp_path / "a.png", (255, 0, 0), size=(8, 8))
    _png(tmp_path / "b.png", (0, 255, 0), size=(20, 12))
    _png(tmp_path / "c.png", (0, 0, 255), size=(5, 9))
    store = load_image_folder(tmp_path, image_size=6)
    assert store.images.shape == (3, 3, 6, 6)
    assert store.images[1, 1].min() > 200  # uniform green stays green after resize


@pytest.fixture
def simclr_log(caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> pytest.LogCaptureFixture:
    """INFO records of the ``simclr`` logger (a run's setup_logging may have stopped it propagating)."""
    monkeypatch.setattr(logging.getLogger("simclr"), "propagate", True)
    caplog.set_level(logging.INFO, logger="simclr")
    return caplog


def _size_messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "simclr" and "mixed sizes" in r.getMessage()]


def test_mixed_sizes_get_the_default_standard_size(tmp_path: Path, simclr_log: pytest.LogCaptureFixture) -> None:
    # Shorter sides 131, 150, 131, 90, 133 and 160 (cut.jpg: header intact, pixel data cut): median 131 -> 128.
    sizes = [(140, 131), (200, 150), (131, 300), (90, 120), (400, 133)]
    for i, size in enumerate(sizes):
        _png(tmp_path / f"{i}.png", (0, 255, 0), size=size)
    _write_broken(tmp_path)  # headers unreadable: left out of the sample
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (170, 160, 3), dtype=np.uint8)).save(tmp_path / "cut.jpg")
    (tmp_path / "cut.jpg").write_bytes((tmp_path / "cut.jpg").read_bytes()[:4000])
    store = load_image_folder(tmp_path)
    assert store.images.shape == (5, 3, 128, 128)
    assert store.images[:, 1].min() > 200  # uniform green stays green after resize
    assert sorted(p for p, _ in store.skipped) == ["cut.jpg", "empty.jpg", "text.png", "truncated.jpg"]
    assert _size_messages(simclr_log) == [
        f"image folder {tmp_path}: images of mixed sizes (shorter side median 131 px, 6 files sampled); "
        "using --image-size 128 (resize shorter side + centre crop); pass --image-size N to choose"
    ]
    # The size comes from the whole folder, so a limited subset gets the same one; a given size wins.
    assert load_image_folder(tmp_path, limit=2).images.shape[1:] == (3, 128, 128)
    assert load_image_folder(tmp_path, image_size=40).images.shape == (5, 3, 40, 40)


@pytest.mark.parametrize(
    ("shorter_side", "expected"),
    [(1, 32), (20, 32), (40, 32), (63, 32), (64, 64), (70, 64), (100, 96), (131, 128), (200, 160), (223, 160)]
    + [(224, 224), (500, 224), (3000, 224)],
)
def test_default_image_size_rounds_down_to_a_standard_size(shorter_side: int, expected: int) -> None:
    assert default_image_size([shorter_side]) == expected
    assert default_image_size([shorter_side, shorter_side, 10_000, 1]) == expected  # the median decides


def test_default_image_size_docstring_and_empty_input() -> None:
    runner = doctest.DocTestRunner()
    for example in doctest.DocTestFinder().find(default_image_size, globs={"default_image_size": default_image_size}):
        runner.run(example)
    assert runner.summarize(verbose=False) == (0, 2)  # (failed, attempted)
    with pytest.raises(ValueError, match="at least one"):
        default_image_size([])


def test_uniform_square_size_kept_and_not_logged(tmp_path: Path, simclr_log: pytest.LogCaptureFixture) -> None:
    for i in range(3):
        _png(tmp_path / f"{i}.png", (0, 0, 0), size=(100, 100))
    assert load_image_folder(tmp_path).images.shape == (3, 3, 100, 100)  # not rounded to 96
    assert _size_messages(simclr_log) == []


def test_outlier_outside_the_header_sample(
    tmp_path: Path, simclr_log: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Sampling 2 of 4 files reads a.png and d.png only; b.png differs.
    monkeypatch.setattr(image_sizes, "_HEADER_SAMPLE", 2)
    square, oblong = tmp_path / "square", tmp_path / "oblong"
    for name in "acd":
        _png(square / f"{name}.png", (0, 0, 0), size=(8, 8))
        _png(oblong / f"{name}.png", (0, 0, 0), size=(12, 10))
    _png(square / "b.png", (0, 0, 0), size=(9, 8))
    _png(oblong / "b.png", (0, 0, 0), size=(9, 8))
    # A square majority size is kept and the outlier resized to it, silently.
    assert load_image_folder(square).images.shape == (4, 3, 8, 8)
    assert _size_messages(simclr_log) == []
    # Otherwise the native decode meets the outlier and the folder is decoded again at the default size.
    assert load_image_folder(oblong).images.shape == (4, 3, 32, 32)
    assert len(_size_messages(simclr_log)) == 1


def test_exif_rotated_photos_of_one_size_keep_it(tmp_path: Path, simclr_log: pytest.LogCaptureFixture) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees: a 12x10 file is shown as 10x12
    Image.new("RGB", (12, 10), (0, 0, 0)).save(tmp_path / "rotated.jpg", exif=exif.tobytes())
    Image.new("RGB", (10, 12), (0, 0, 0)).save(tmp_path / "upright.jpg")
    assert load_image_folder(tmp_path).images.shape == (2, 3, 12, 10)
    assert _size_messages(simclr_log) == []


def test_split_folders_share_the_train_split_size(tmp_path: Path, simclr_log: pytest.LogCaptureFixture) -> None:
    # train: shorter sides 70, 70, 70, 100 -> 64; test alone would keep 100 x 100.
    for k, cls in enumerate(("a", "b")):
        _png(tmp_path / "train" / cls / "0.png", _class_color(k), size=(70, 90))
        _png(tmp_path / "train" / cls / "1.png", _class_color(k), size=(80 + 20 * k, 70 + 40 * k))
        _png(tmp_path / "test" / cls / "0.png", _class_color(k), size=(100, 100))
    train = load_dataset("imagefolder", "train", tmp_path)
    test = load_dataset("imagefolder", "test", tmp_path)
    assert train is not None and test is not None
    assert train.images.shape == (4, 3, 64, 64) and test.images.shape == (2, 3, 64, 64)
    assert test.labels.tolist() == [0, 1]
    assert len(_size_messages(simclr_log)) == 1  # logged once, for the train split
    given = load_dataset("imagefolder", "test", tmp_path, image_size=48)
    assert given is not None and given.images.shape == (2, 3, 48, 48)


@pytest.mark.slow
def test_cli_pretrain_on_a_folder_of_mixed_sizes(tmp_path: Path) -> None:
    folder, out = tmp_path / "photos", tmp_path / "run"
    sizes = [(40, 50), (70, 60), (64, 64), (90, 30), (30, 45), (50, 50), (48, 36), (60, 80)]
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i, (w, h) in enumerate(sizes):
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    args = ["pretrain", "--dataset", "imagefolder", "--data-dir", str(folder), "--out", str(out), "--epochs", "1"]
    args += ["--batch-size", "4", "--backbone", "resnet18", "--knn-every-epochs", "0", "--quiet", "--precision", "32"]
    assert main([*args, "--accelerator", "cpu"]) == 0
    assert (out / "backbone.safetensors").is_file()


def test_limit_per_class_and_limit(tmp_path: Path) -> None:
    _make_classes(tmp_path, ["a", "b", "c"], per_class=5)
    store = load_image_folder(tmp_path, limit_per_class=2)
    assert store.labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert store.file_names == [
        "a/000.png",
        "a/001.png",
        "b/000.png",
        "b/001.png",
        "c/000.png",
        "c/001.png",
    ]
    limited = load_image_folder(tmp_path, limit=6, seed=3)
    assert torch.bincount(limited.labels).tolist() == [2, 2, 2]
    again = load_image_folder(tmp_path, limit=6, seed=3)
    assert limited.file_names == again.file_names


def test_workers_give_identical_result(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    for k in range(2):
        for i in range(150):  # more than one decode chunk
            arr = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
            path = tmp_path / f"c{k}" / f"{i:04d}.png"
            path.parent.mkdir(exist_ok=True)
            Image.fromarray(arr).save(path)
    (tmp_path / "c1" / "0007.png").write_bytes(b"broken")
    serial = load_image_folder(tmp_path, workers=0)
    assert len(serial) == 299 and [p for p, _ in serial.skipped] == ["c1/0007.png"]
    parallel = load_image_folder(tmp_path, workers=2)  # forked processes on Linux
    assert torch.equal(serial.images, parallel.images)
    assert torch.equal(serial.labels, parallel.labels)
    assert serial.file_names == parallel.file_names and serial.skipped == parallel.skipped
    paths = [tmp_path / f for f in serial.file_names or []]
    for pool in ("thread", "process"):
        images, ok_idx, skipped = decode_files(paths, workers=2, pool=pool)
        assert torch.equal(images, serial.images) and ok_idx.numel() == 299 and skipped == []


@pytest.mark.parametrize("pool", ["thread", "process"])
def test_parallel_size_mismatch_is_user_error(tmp_path: Path, pool: str) -> None:
    paths = [_png(tmp_path / f"{i:03d}.png", (0, 0, 0), size=(8, 8)) for i in range(100)]
    paths.append(_png(tmp_path / "odd.png", (0, 0, 0), size=(9, 8)))
    with pytest.raises(UserError, match="--image-size"):
        decode_files(paths, workers=2, pool=pool)


def test_split_folder_test_reuses_train_classes(tmp_path: Path) -> None:
    _make_classes(tmp_path / "train", ["a", "b", "c"], per_class=2)
    # The test split lacks class "a": "c" must still be label 2.
    _png(tmp_path / "test" / "b" / "0.png", _class_color(1))
    _png(tmp_path / "test" / "c" / "0.png", _class_color(2))
    test = load_split_folder(tmp_path, "test")
    assert test.class_names == ["a", "b", "c"]
    assert test.labels.tolist() == [1, 2]
    assert folder_class_names(tmp_path / "train") == ["a", "b", "c"]
    _png(tmp_path / "val_only" / "train" / "a" / "0.png", (0, 0, 0))
    with pytest.raises(UserError, match="test/ or val"):
        load_split_folder(tmp_path / "val_only", "test")


def test_unknown_test_class_is_user_error(tmp_path: Path) -> None:
    _make_classes(tmp_path / "train", ["a", "b"], per_class=1)
    _make_classes(tmp_path / "test", ["a", "x"], per_class=1)
    with pytest.raises(UserError, match="not among the training classes"):
        load_split_folder(tmp_path, "test")


def test_symlinked_files_are_followed(tmp_path: Path) -> None:
    src = tmp_path / "src"
    _make_classes(src, ["a", "b"], per_class=2)
    dst = tmp_path / "dst"
    for cls in ("a", "b"):
        (dst / cls).mkdir(parents=True)
        for f in (src / cls).iterdir():
            os.symlink(f, dst / cls / f.name)
    # Issue 14: these links lead outside the data folder, so they are followed only when asked to.
    with pytest.raises(UserError, match="4 skipped .*link leads outside the data folder"):
        load_image_folder(dst)
    assert len(load_image_folder(dst, follow_external_links=True)) == 4


def test_real_cifar10_subset(real_cifar_small: Path) -> None:
    train = load_split_folder(real_cifar_small, "train", workers=2)
    test = load_split_folder(real_cifar_small, "test")
    expected = sorted(p.name for p in (real_cifar_small / "train").iterdir())
    assert train.class_names == expected and len(expected) == 10
    assert train.images.shape == (300, 3, 32, 32) and train.images.dtype == torch.uint8
    assert train.images.is_contiguous()
    assert torch.bincount(train.labels).tolist() == [30] * 10
    assert test.images.shape == (100, 3, 32, 32) and test.class_names == expected
    assert torch.bincount(test.labels).tolist() == [10] * 10
    # Pixels and labels match a direct PIL decode of the same file.
    k = 137
    name = train.file_names[k]
    ref = np.asarray(Image.open(real_cifar_small / "train" / name).convert("RGB"))
    np.testing.assert_array_equal(train.images[k].permute(1, 2, 0).numpy(), ref)
    assert train.class_names[int(train.labels[k])] == name.split("/")[0]


def test_list_image_folder_without_decoding(tmp_path: Path) -> None:
    _make_classes(tmp_path, ["b", "a"], per_class=2)
    paths, labels, names = list_image_folder(tmp_path)
    assert names == ["a", "b"] and labels.tolist() == [0, 0, 1, 1]
    assert paths == ["a/000.png", "a/001.png", "b/000.png", "b/001.png"]


# -- hostile folders (issue 14) ------------------------------------------------------------------------
OUTSIDE = "link leads outside the data folder"


def _tree(root: Path, leave_out: Path) -> dict[str, tuple[int, int, int]]:
    """``(mode, size, mtime)`` of everything below ``root`` except ``leave_out``, links not followed."""
    found: dict[str, tuple[int, int, int]] = {}
    stack = [root]
    while stack:
        folder = stack.pop()
        with contextlib.suppress(OSError), os.scandir(folder) as entries:
            for entry in entries:
                path = Path(entry.path)
                if path == leave_out:
                    continue
                st = entry.stat(follow_symlinks=False)
                found[str(path.relative_to(root))] = (st.st_mode, st.st_size, st.st_mtime_ns)
                if entry.is_dir(follow_symlinks=False):
                    stack.append(path)
    return found


def _cli_error(tmp_path: Path, data: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> str:
    """Run ``simclr pretrain`` on ``data`` from ``tmp_path``: exit code 2, one line on stderr, and nothing
    written outside the run directory; returns that line."""
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "run"
    before = _tree(tmp_path, run)
    args = ["pretrain", "--dataset", "imagefolder", "--data-dir", str(data), "--out", str(run), "--epochs", "1"]
    assert main([*args, "--accelerator", "cpu", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("simclr: error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert _tree(tmp_path, run) == before
    return err


@contextlib.contextmanager
def _within_seconds(seconds: int) -> Iterator[None]:
    """Fail instead of hanging: opening a FIFO blocks until a writer comes, which never happens here."""

    def fail(signum: int, frame: object) -> None:
        pytest.fail(f"still running after {seconds} s: was a FIFO opened?")

    previous = signal.signal(signal.SIGALRM, fail)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def make_unreadable(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Path], None]]:
    """Make a folder unreadable: ``chmod 000``, or, as root (which reads it anyway), an ``os.scandir``
    that fails on it with EACCES as the kernel would."""
    real_scandir = os.scandir
    blocked: set[str] = set()

    def scandir(path: int | str | os.PathLike[str] = ".") -> object:
        if not isinstance(path, int) and os.fspath(path) in blocked:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(path))
        return real_scandir(path)

    if os.geteuid() == 0:
        monkeypatch.setattr(os, "scandir", scandir)

    def make(folder: Path) -> None:
        blocked.add(str(folder))
        folder.chmod(0)

    yield make
    for folder in blocked:
        Path(folder).chmod(0o755)


def test_link_loop_and_second_links_list_each_real_file_once(tmp_path: Path) -> None:
    _make_classes(tmp_path, ["a", "b"], per_class=2)
    os.symlink("..", tmp_path / "a" / "loop")  # b's images must not come back as a/loop/b/*, labelled a
    os.symlink("000.png", tmp_path / "a" / "same.png")  # a second name for a/000.png
    os.symlink("../b/001.png", tmp_path / "a" / "zz.png")  # the first path in the sorted walk wins
    os.link(tmp_path / "b" / "000.png", tmp_path / "b" / "hard.png")  # a hard link is the same file too
    store = load_image_folder(tmp_path)
    assert store.file_names == ["a/000.png", "a/001.png", "a/zz.png", "b/000.png"]
    assert store.labels.tolist() == [0, 0, 0, 1] and store.skipped == []
    assert folder_class_names(tmp_path) == ["a", "b"] and estimate_folder(tmp_path).images == 4
    # Unlabeled: a loop back to the root itself is not followed either.
    flat = tmp_path / "flat"
    _png(flat / "x.png", (0, 0, 0))
    (flat / "sub").mkdir()
    os.symlink("../..", flat / "sub" / "up")
    os.symlink("..", flat / "sub" / "loop")
    assert scan_image_folder(flat).paths == ["x.png"]


def test_links_outside_the_data_folder_are_skipped_unless_asked(
    tmp_path: Path, simclr_log: pytest.LogCaptureFixture
) -> None:
    data, outside = tmp_path / "data", tmp_path / "outside"
    _make_classes(data, ["a", "b"], per_class=1)
    _png(outside / "secret.png", (1, 2, 3))
    os.symlink(outside / "secret.png", data / "a" / "ext.png")
    os.symlink(outside, data / "b" / "extdir")
    store = load_image_folder(data)
    assert store.file_names == ["a/000.png", "b/000.png"] and store.labels.tolist() == [0, 1]
    assert store.skipped == [("a/ext.png", OUTSIDE), ("b/extdir", OUTSIDE)]
    assert estimate_folder(data).images == 2
    # The 3-tuple listing cannot return them, so it logs them, one line each.
    assert list_image_folder(data)[0] == ["a/000.png", "b/000.png"]
    assert [r.getMessage() for r in simclr_log.records if "skipped" in r.getMessage()] == [
        f"{data}: skipped 2 file(s):",
        f"  skipped a/ext.png: {OUTSIDE}",
        f"  skipped b/extdir: {OUTSIDE}",
    ]
    followed = load_image_folder(data, follow_external_links=True)
    assert followed.file_names == ["a/000.png", "a/ext.png", "b/000.png"]  # b/extdir/secret.png: the same file
    assert followed.skipped == [] and estimate_folder(data, follow_external_links=True).images == 3


def test_links_between_splits_stay_inside_the_data_folder(tmp_path: Path) -> None:
    _make_classes(tmp_path / "train", ["a", "b"], per_class=1)
    _png(tmp_path / "test" / "b" / "000.png", _class_color(1))
    (tmp_path / "test" / "a").mkdir()
    os.symlink("../../train/a/000.png", tmp_path / "test" / "a" / "000.png")
    test = load_split_folder(tmp_path, "test")
    assert test.file_names == ["a/000.png", "b/000.png"] and test.labels.tolist() == [0, 1]
    assert test.skipped == []
    # Loaded on its own, the test folder is the data folder, and the link leads outside it.
    assert load_image_folder(tmp_path / "test", class_names=["a", "b"]).skipped == [("a/000.png", OUTSIDE)]


def test_cli_folder_of_outside_links_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _png(tmp_path / "outside" / "secret.png", (0, 0, 0))
    (tmp_path / "data").mkdir()
    os.symlink(tmp_path / "outside" / "secret.png", tmp_path / "data" / "x.png")
    err = _cli_error(tmp_path, tmp_path / "data", capsys, monkeypatch)
    assert "no image files" in err and f"1 skipped (e.g. x.png: {OUTSIDE})" in err


def test_unreadable_folders_are_skipped_and_counted(
    tmp_path: Path, make_unreadable: Callable[[Path], None], simclr_log: pytest.LogCaptureFixture
) -> None:
    _make_classes(tmp_path, ["a", "b", "c"], per_class=2)
    _png(tmp_path / "a" / "sub" / "x.png", _class_color(0))
    make_unreadable(tmp_path / "c")
    make_unreadable(tmp_path / "a" / "sub")
    store = load_image_folder(tmp_path)
    assert store.class_names == ["a", "b"] and store.labels.tolist() == [0, 0, 1, 1]
    reason = "folder cannot be read (Permission denied)"
    assert store.skipped == [("a/sub/", reason), ("c/", reason)]
    report_skipped(store, "train")
    assert f"  skipped c/: {reason}" in [r.getMessage() for r in simclr_log.records]


def test_cli_unreadable_data_folder_is_a_one_line_error(
    tmp_path: Path,
    make_unreadable: Callable[[Path], None],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _make_classes(tmp_path / "data", ["a", "b"], per_class=1)
    make_unreadable(tmp_path / "data")
    err = _cli_error(tmp_path, tmp_path / "data", capsys, monkeypatch)
    assert "cannot be read (Permission denied)" in err and "--data-dir" in err


def test_fifos_and_dangling_links_are_skipped_never_opened(tmp_path: Path) -> None:
    _make_classes(tmp_path, ["a", "b"], per_class=1)
    os.mkfifo(tmp_path / "a" / "pipe.png")
    os.symlink("missing.jpg", tmp_path / "b" / "gone.jpg")
    os.symlink("self.jpg", tmp_path / "b" / "self.jpg")
    with _within_seconds(10):
        store = load_image_folder(tmp_path)
    assert store.file_names == ["a/000.png", "b/000.png"]
    assert store.skipped == [
        ("a/pipe.png", "not a regular file"),
        ("b/gone.jpg", "dangling link"),
        ("b/self.jpg", "cannot be read (Too many levels of symbolic links)"),
    ]


def test_cli_folder_of_fifos_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "data").mkdir()
    os.mkfifo(tmp_path / "data" / "pipe.jpg")
    with _within_seconds(10):
        err = _cli_error(tmp_path, tmp_path / "data", capsys, monkeypatch)
    assert "1 skipped (e.g. pipe.jpg: not a regular file)" in err


@contextlib.contextmanager
def _folder_chain(root: Path, depth: int) -> Iterator[tuple[int, int]]:
    """``root/d/d/.../d``, ``depth`` folders deep (fewer where the OS refuses), made and removed through folder
    descriptors, never a long path; yields ``(descriptor of the deepest folder, depth made)``. Removed here
    because ``shutil.rmtree`` (recursive before Python 3.12), and so pytest's clean-up of old temporary
    folders, would hit Python's recursion limit on it."""
    fd, made = os.open(root, os.O_RDONLY), 0
    try:
        with contextlib.suppress(OSError):
            while made < depth:
                os.mkdir("d", dir_fd=fd)
                made += 1
                child = os.open("d", os.O_RDONLY, dir_fd=fd)
                os.close(fd)
                fd = child
        yield fd, made
    finally:
        for _ in range(made):
            for name in os.listdir(fd):
                os.unlink(name, dir_fd=fd)
            parent = os.open("..", os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = parent
            os.rmdir("d", dir_fd=fd)
        os.close(fd)


@pytest.fixture
def quick_tmp(tmp_path: Path) -> Iterator[Path]:
    """An empty folder on tmpfs where there is one (removing 1,200 nested folders takes seconds on ext4 and
    milliseconds there), else ``tmp_path``."""
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        yield tmp_path
        return
    with tempfile.TemporaryDirectory(dir=shm, prefix="simclr-test-") as folder:
        yield Path(folder)


def test_folder_nested_1200_deep_loads_without_recursion(quick_tmp: Path) -> None:
    png = io.BytesIO()
    Image.new("RGB", (8, 8), (1, 2, 3)).save(png, format="PNG")
    with _folder_chain(quick_tmp, 1200) as (deepest, depth):
        assert depth > 1000  # deeper than Python's default recursion limit
        with os.fdopen(os.open("x.png", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=deepest), "wb") as out:
            out.write(png.getvalue())
        store = load_image_folder(quick_tmp)
        assert store.file_names == ["d/" * depth + "x.png"] and store.skipped == []
        assert tuple(store.images[0, :, 0, 0].tolist()) == (1, 2, 3)
        assert estimate_folder(quick_tmp).images == 1 and folder_class_names(quick_tmp) == []


@pytest.mark.parametrize(
    ("name", "shown"),
    [("bad\nname.jpg", "bad\\nname.jpg"), ("\x1b[2Jx.png", "\\x1b[2Jx.png"), ("tab\there", "tab\\there")]
    + [
        ("café/été.png", "café/été.png"),
        ("bytes\udcff.jpg", "bytes\\udcff.jpg"),
        ("line\u2028.png", "line\\u2028.png"),
    ],
)
def test_printable_name_escapes_control_characters(name: str, shown: str) -> None:
    assert printable_name(name) == shown


def test_control_characters_in_names_are_escaped_in_the_log(tmp_path: Path) -> None:
    _make_classes(tmp_path / "data", ["a", "b"], per_class=1)
    (tmp_path / "data" / "a" / "bad\nname.jpg").write_bytes(b"\x00garbage\nbytes\x1b[31m")
    (tmp_path / "data" / "b" / "\x1b[2Jclear.png").write_bytes(b"junk")
    store = load_image_folder(tmp_path / "data")
    assert sorted(name for name, _ in store.skipped) == ["a/bad\nname.jpg", "b/\x1b[2Jclear.png"]  # raw for programs
    # Written as a run's train.log is: one record, one line.
    log_file = tmp_path / "train.log"
    handler = logging.FileHandler(log_file)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger = logging.getLogger("simclr")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        report_skipped(store, "train")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        handler.close()
    text = log_file.read_text()
    assert len(text.splitlines()) == 3 and "\x1b" not in text  # the header and one line per skipped file
    assert "skipped a/bad\\nname.jpg: " in text and "skipped b/\\x1b[2Jclear.png: " in text


def test_cli_control_characters_in_names_stay_on_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "bad\nname.jpg").write_bytes(b"\x00garbage")
    err = _cli_error(tmp_path, tmp_path / "data", capsys, monkeypatch)
    assert "no readable image" in err and "bad\\nname.jpg" in err
