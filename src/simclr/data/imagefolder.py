"""Loading a folder of images into an :class:`ImageStore`.

Layout rules:

* **Labelled**: the folder holds no image files itself and at least two of its direct
  sub-folders hold image files directly. Every direct sub-folder holding images (at any depth) is
  then a class; classes are numbered in sorted name order, images are gathered recursively.
* **Unlabeled**: anything else (a flat folder, a single sub-folder, a nested tree whose first
  level holds no images): every image below the folder is taken, labels are -1.
* Hidden files and folders (name starting with ``.``, e.g. macOS ``._x.jpg`` forks) are ignored;
  extensions are matched case-insensitively (see :data:`IMAGE_EXTENSIONS`).
* Every real file is listed once, under the first path the sorted walk meets it by: links and hard links
  never repeat an image, and a link loop never relabels one. Links leading outside the data folder are
  skipped unless asked for (``follow_external_links``); so are dangling links, FIFOs and other special
  files with image names (never opened: a FIFO would block), and folders that cannot be read. All of
  them are counted and named in ``ImageStore.skipped``, never dropped silently.

Images are decoded once, straight into one preallocated ``(N, 3, H, W) uint8`` tensor; with
``workers > 0`` by that many forked processes sharing the output mapping (threads where fork is
not available). Files that cannot be decoded are skipped and listed in ``ImageStore.skipped``.

Image size: a given ``image_size`` resizes every image (shorter side, then centre crop). Without one,
a folder whose images all share one size keeps it; a folder of mixed sizes gets
:func:`default_image_size` of its images' shorter sides, read from the file headers of a sample.
"""

from __future__ import annotations

import logging
import mmap
import multiprocessing as mp
import os
import stat
import statistics
import sys
import warnings
from collections.abc import Iterator, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from simclr.data.decode import IMAGE_EXTENSIONS, ImageDecodeError, is_image_file, load_image
from simclr.data.store import ImageStore, printable_name, report_skipped
from simclr.data.subset import stratified_subset
from simclr.errors import UserError

__all__ = [
    "STANDARD_IMAGE_SIZES",
    "FolderEstimate",
    "FolderListing",
    "decode_files",
    "estimate_folder",
    "default_image_size",
    "find_split_folder",
    "folder_class_names",
    "has_split_layout",
    "list_image_folder",
    "load_image_folder",
    "load_split_folder",
    "scan_image_folder",
]

_EXT_LIST = ", ".join(sorted(e.lstrip(".") for e in IMAGE_EXTENSIONS))
_SPLIT_DIRS = {
    "train": ("train",),
    "test": ("test", "val", "valid", "validation"),
    "val": ("val", "valid", "validation"),
}

log = logging.getLogger("simclr")

STANDARD_IMAGE_SIZES: tuple[int, ...] = (32, 64, 96, 128, 160, 224)
# Header reads per folder when choosing an image size: enough for a stable median, cheap on any folder.
_HEADER_SAMPLE = 1000
_EXIF_ORIENTATION = 0x0112


# Why an entry that may have been meant as data is left out of a listing (``ImageStore.skipped`` reasons).
_OUTSIDE_LINK = "link leads outside the data folder"
_NOT_REGULAR = "not a regular file"
_DANGLING_LINK = "dangling link"

_Key = tuple[int, int]  # (st_dev, st_ino): one real file or folder, however many paths lead to it


@dataclass(frozen=True)
class _Entry:
    """One entry of a folder as a listing sees it: ``kind`` is ``"file"`` (a regular image file),
    ``"dir"`` or ``"skipped"`` (with its ``reason``)."""

    name: str
    kind: str
    key: _Key = (0, 0)
    reason: str = ""


@dataclass(frozen=True)
class _Folder:
    """A folder's entries by kind, each list in name order (the order of the listing)."""

    files: list[_Entry]
    dirs: list[_Entry]
    skipped: list[_Entry]


def _is_within(real: str, inside: str) -> bool:
    return real == inside or real.startswith(inside.rstrip(os.sep) + os.sep)


def _classify(entry: os.DirEntry[str], inside: str | None) -> _Entry | None:
    """What ``entry`` is to a listing; ``None`` for what a listing ignores (hidden entries, files without an
    image extension). ``inside``: the real folder that links must resolve into (``None``: anywhere).

    Only ``stat`` is called, never ``open``: opening a FIFO named ``x.jpg`` would block the decoder forever.
    """
    name = entry.name
    try:
        if name.startswith(".") or not (is_image_file(name) or entry.is_dir()):
            return None
        st = entry.stat()  # of the link's target
        if entry.is_symlink() and inside is not None and not _is_within(os.path.realpath(entry.path), inside):
            return _Entry(name, "skipped", reason=_OUTSIDE_LINK)
    except FileNotFoundError:
        return _Entry(name, "skipped", reason=_DANGLING_LINK if entry.is_symlink() else "vanished while listed")
    except OSError as e:  # e.g. a link loop (ELOOP) or a folder on the way that cannot be searched
        return _Entry(name, "skipped", reason=f"cannot be read ({e.strerror})")
    if stat.S_ISDIR(st.st_mode):
        return _Entry(name, "dir", (st.st_dev, st.st_ino))
    if stat.S_ISREG(st.st_mode):
        return _Entry(name, "file", (st.st_dev, st.st_ino))
    return _Entry(name, "skipped", reason=_NOT_REGULAR)


def _entries(path: str, inside: str | None) -> Iterator[_Entry]:
    """The classified entries of ``path``, unsorted; raises :class:`OSError` when it cannot be read."""
    with os.scandir(path) as it:
        for entry in it:
            item = _classify(entry, inside)
            if item is not None:
                yield item


def _scan(path: str, inside: str | None) -> _Folder:
    items = sorted(_entries(path, inside), key=lambda item: item.name)
    return _Folder(*([item for item in items if item.kind == kind] for kind in ("file", "dir", "skipped")))


def _holds_images(path: str, inside: str | None) -> bool:
    """True when ``path`` directly holds an image file a listing would take (it stops at the first one)."""
    try:
        return any(item.kind == "file" for item in _entries(path, inside))
    except OSError:
        return False


class _Walk:
    """The state of one listing: every real file and folder is visited at most once, the first path to it
    in the sorted walk winning, so a link loop (``a/loop -> ..``) cannot list a class's images again under
    another class, and neither can a second link to the same files. What is left out goes to ``skipped``."""

    def __init__(self, inside: str | None) -> None:
        self.inside = inside
        self.files: set[_Key] = set()
        self.dirs: set[_Key] = set()
        self.skipped: list[tuple[str, str]] = []

    def note(self, rel: str, folder: _Folder) -> None:
        self.skipped.extend((rel + item.name, item.reason) for item in folder.skipped)

    def images(self, path: str, rel: str, key: _Key) -> list[str]:
        """Relative paths (``rel`` + '/'-separated) of the images below ``path`` not listed before: a folder's
        files, then its sub-folders' in name order. Iterative, so a folder nested thousands deep needs no
        deeper Python stack; an unreadable folder is skipped under its relative path (``rel``)."""
        out: list[str] = []
        stack = [(path, rel, key)]
        while stack:
            path, rel, key = stack.pop()
            if key in self.dirs:  # an ancestor (a link loop), or reached before through another link
                continue
            self.dirs.add(key)
            try:
                folder = _scan(path, self.inside)
            except OSError as e:
                self.skipped.append((rel, f"folder cannot be read ({e.strerror})"))
                continue
            self.note(rel, folder)
            for item in folder.files:
                if item.key not in self.files:
                    self.files.add(item.key)
                    out.append(rel + item.name)
            stack.extend((os.path.join(path, d.name), f"{rel}{d.name}/", d.key) for d in reversed(folder.dirs))
        return out


def _check_folder(root: Path, what: str = "image folder") -> Path:
    root = Path(root).expanduser()
    if not root.exists():
        raise UserError(f"{what} {printable_name(str(root))} does not exist; point --data-dir at an existing folder")
    if not root.is_dir():
        raise UserError(f"{what} {printable_name(str(root))} is not a folder; point --data-dir at a folder of images")
    return root


@dataclass(frozen=True)
class FolderListing:
    """What :func:`scan_image_folder` found: image paths relative to the folder ('/'-separated), their labels
    (-1 when unlabeled), the class names ([] when unlabeled), and ``(name, reason)`` of every entry left out
    that may have been meant as data, so that callers can count and name it."""

    paths: list[str]
    labels: torch.Tensor
    class_names: list[str]
    skipped: list[tuple[str, str]]


def scan_image_folder(
    root: Path,
    class_names: Sequence[str] | None = None,
    *,
    follow_external_links: bool = False,
    data_root: Path | None = None,
) -> FolderListing:
    """List a folder's images (see the module docstring for the layout rules) without decoding them.

    ``class_names`` forces the class numbering (e.g. a test split reusing the train split's classes); a
    labelled folder with a class outside that list is a :class:`UserError`. Every real file is listed once.
    Links whose target lies outside ``data_root`` (default ``root``; the folder holding the splits for a split)
    are skipped, since nobody asked to read there, unless ``follow_external_links``. Dangling links, FIFOs
    and other special files with image names, and folders that cannot be read, are skipped too.
    """
    root = _check_folder(root)
    base = str(root)
    inside = None if follow_external_links else os.path.realpath(data_root if data_root is not None else root)
    try:
        top = _scan(base, inside)
        st = os.stat(base)
    except OSError as e:
        raise UserError(
            f"image folder {printable_name(base)} cannot be read ({e.strerror}); point --data-dir at a readable folder"
        ) from e
    direct = [d.name for d in top.dirs if _holds_images(os.path.join(base, d.name), inside)]
    labelled = not top.files and len(direct) >= 2
    if class_names is not None and not top.files and direct:
        labelled = True  # a split whose classes are known from its sibling split
    walk = _Walk(inside)
    if not labelled:
        rel = walk.images(base, "", (st.st_dev, st.st_ino))
        return FolderListing(rel, torch.full((len(rel),), -1, dtype=torch.int64), [], walk.skipped)
    walk.dirs.add((st.st_dev, st.st_ino))  # a class folder's link back to the root is a loop
    walk.note("", top)
    per_class: dict[str, list[str]] = {}
    for d in top.dirs:
        rel = walk.images(os.path.join(base, d.name), f"{d.name}/", d.key)
        if rel:
            per_class[d.name] = rel
    if class_names is None:
        names = sorted(per_class)
    else:
        names = list(class_names)
        unknown = sorted(set(per_class) - set(names))
        if unknown:
            raise UserError(
                f"class folder(s) {', '.join(map(printable_name, unknown))} in {printable_name(base)} are not among "
                "the training classes; make the train and test folders use the same class names"
            )
    index = {name: i for i, name in enumerate(names)}
    paths: list[str] = []
    labels: list[int] = []
    for name in sorted(per_class):
        paths.extend(per_class[name])
        labels.extend([index[name]] * len(per_class[name]))
    return FolderListing(paths, torch.tensor(labels, dtype=torch.int64), names, walk.skipped)


def folder_class_names(root: Path, *, follow_external_links: bool = False) -> list[str]:
    """Class names a folder gets from :func:`scan_image_folder` ([] when unlabeled), without decoding."""
    return scan_image_folder(root, follow_external_links=follow_external_links).class_names


def list_image_folder(
    root: Path, class_names: Sequence[str] | None = None, *, follow_external_links: bool = False
) -> tuple[list[str], torch.Tensor, list[str]]:
    """Relative image paths, labels (-1 when unlabeled) and class names of a folder, without decoding
    (:func:`scan_image_folder`). The entries it skips are logged as warnings, one line each, since this
    shape of the answer cannot carry them and they must never vanish silently."""
    listing = scan_image_folder(root, class_names, follow_external_links=follow_external_links)
    report_skipped(listing.skipped, str(root))
    return listing.paths, listing.labels, listing.class_names


def _limit_per_class(labels: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the first ``k`` files of every class (of all files when unlabeled)."""
    if k < 0:
        raise UserError(f"limit per class must be >= 0, got {k}; pass a non-negative limit")
    keep: list[int] = []
    seen: dict[int, int] = {}
    for i, lab in enumerate(labels.tolist()):
        c = seen.get(lab, 0)
        if c < k:
            keep.append(i)
            seen[lab] = c + 1
    return torch.tensor(keep, dtype=torch.int64)


def _num_workers(workers: int) -> int:
    if workers < 0:
        return os.cpu_count() or 1
    return workers


def _default_pool() -> str:
    # Forked processes share the anonymous output mapping and avoid the GIL, which is contended
    # when the per-image Python work (open, header parsing) is as large as the decode itself.
    # Daemonic processes (e.g. DataLoader workers) may not have children.
    if sys.platform.startswith("linux") and "fork" in mp.get_all_start_methods() and not mp.current_process().daemon:
        return "process"
    return "thread"


class _MixedSizesError(UserError):
    """Images of different sizes met while decoding at the native size (``image_size=None``)."""

    def __init__(self, message: str, sizes: tuple[tuple[int, int], tuple[int, int]]) -> None:
        super().__init__(message)
        self.sizes = sizes  # (width, height) of the first image and of the one that differs


# (paths, image_size, crop_bottom, resize mode, target array, height, width); set in forked workers.
_DecodeState = tuple[list[str], int | None, int, str, np.ndarray, int, int]
_WORKER_STATE: _DecodeState | None = None


def _decode_range(
    state: _DecodeState, lo: int, hi: int
) -> tuple[list[int], dict[int, str], tuple[int, int, int] | None]:
    """Decode ``lo..hi-1`` into ``target``; returns decoded indices, errors and the first size
    mismatch ``(index, height, width)`` (after which it stops)."""
    paths, image_size, crop_bottom, resize, target, h, w = state
    done: list[int] = []
    errors: dict[int, str] = {}
    for i in range(lo, hi):
        try:
            arr = load_image(paths[i], image_size, crop_bottom, resize)
        except ImageDecodeError as e:
            errors[i] = e.reason
            continue
        if arr.shape[0] != h or arr.shape[1] != w:
            return done, errors, (i, arr.shape[0], arr.shape[1])
        target[i] = arr.transpose(2, 0, 1)
        done.append(i)
    return done, errors, None


def _init_worker(state: _DecodeState) -> None:
    global _WORKER_STATE
    _WORKER_STATE = state


def _worker_range(lo: int, hi: int) -> tuple[list[int], dict[int, str], tuple[int, int, int] | None]:
    assert _WORKER_STATE is not None
    return _decode_range(_WORKER_STATE, lo, hi)


def decode_files(
    paths: Sequence[str | os.PathLike[str]],
    image_size: int | None = None,
    workers: int = 0,
    crop_bottom: int = 0,
    names: Sequence[str] | None = None,
    where: str | os.PathLike[str] = "the dataset",
    pool: str = "auto",
    resize: str = "crop",
) -> tuple[torch.Tensor, torch.Tensor, list[tuple[str, str]]]:
    """Decode ``paths`` into one ``(N_ok, 3, H, W) uint8`` tensor.

    Returns ``(images, ok_indices, skipped)``: ``ok_indices`` are the positions in ``paths`` that
    decoded, ``skipped`` lists ``(name, reason)`` for the others (``names`` defaults to the paths).
    With ``image_size=None`` every image must have the size of the first one, else a
    :class:`UserError` asks for ``--image-size`` (:func:`load_image_folder` picks one instead).

    ``workers > 0`` decodes in parallel (``-1``: one per CPU) with ``pool`` = ``"process"``
    (forked processes writing into one shared anonymous mapping; the default on Linux) or
    ``"thread"`` (the default elsewhere). Either way every image is written straight into its
    slot of the preallocated output; nothing is gathered or stacked afterwards.
    """
    if image_size is not None and image_size <= 0:
        raise UserError(f"image size must be positive, got {image_size}; pass e.g. --image-size 64")
    if pool not in ("auto", "process", "thread"):
        raise ValueError(f"pool must be 'auto', 'process' or 'thread', got {pool!r}")
    path_strs: list[str] = [str(os.fspath(p)) for p in paths]
    shown: list[str] = [str(x) for x in names] if names is not None else list(path_strs)
    n = len(path_strs)
    errors: dict[int, str] = {}

    # The first decodable image fixes the shape when no image_size is given.
    first = 0
    arr0: np.ndarray | None = None
    while first < n and arr0 is None:
        try:
            arr0 = load_image(path_strs[first], image_size, crop_bottom, resize)
        except ImageDecodeError as e:
            errors[first] = e.reason
        first += 1
    if arr0 is None:
        return (
            torch.empty((0, 3, image_size or 0, image_size or 0), dtype=torch.uint8),
            torch.empty(0, dtype=torch.int64),
            [(shown[i], errors[i]) for i in range(n)],
        )
    h, w = arr0.shape[:2]
    rest = n - first
    nw = min(_num_workers(workers), max(1, rest // 32))
    kind = _default_pool() if pool == "auto" else pool
    use_processes = nw > 1 and kind == "process"
    if use_processes:
        # MAP_SHARED | MAP_ANONYMOUS: inherited by forked workers, not limited by /dev/shm.
        target = np.frombuffer(mmap.mmap(-1, n * 3 * h * w), dtype=np.uint8).reshape(n, 3, h, w)
        images = torch.from_numpy(target)
    else:
        images = torch.empty((n, 3, h, w), dtype=torch.uint8)
        target = images.numpy()  # shares memory with `images`
    target[first - 1] = arr0.transpose(2, 0, 1)
    ok = np.zeros(n, dtype=bool)
    ok[first - 1] = True

    state: _DecodeState = (path_strs, image_size, crop_bottom, resize, target, h, w)
    chunk = max(16, min(1024, -(-rest // (4 * nw)))) if nw > 1 else max(rest, 1)
    ranges = [(lo, min(lo + chunk, n)) for lo in range(first, n, chunk)]
    results: list[tuple[list[int], dict[int, str], tuple[int, int, int] | None]] = []
    if nw <= 1:
        results = [_decode_range(state, lo, hi) for lo, hi in ranges]
    else:
        executor: Executor
        if use_processes:
            executor = ProcessPoolExecutor(
                max_workers=nw,
                mp_context=mp.get_context("fork"),
                initializer=_init_worker,
                initargs=(state,),
            )
        else:
            executor = ThreadPoolExecutor(max_workers=nw, thread_name_prefix="simclr-decode")
        with executor, warnings.catch_warnings():
            # Python >= 3.12 warns about fork() in a multi-threaded process; the workers only run
            # PIL and NumPy code, never the parent's thread pools.
            warnings.filterwarnings("ignore", message=".*fork", category=DeprecationWarning)
            if use_processes:
                futures = [executor.submit(_worker_range, lo, hi) for lo, hi in ranges]
            else:
                futures = [executor.submit(_decode_range, state, lo, hi) for lo, hi in ranges]
            for f in futures:
                results.append(f.result())
                if results[-1][2] is not None:  # size mismatch: stop early
                    for g in futures:
                        g.cancel()
                    break
    for done, errs, mismatch in results:
        if mismatch is not None:
            i, mh, mw = mismatch
            raise _MixedSizesError(
                f"images in {printable_name(str(where))} have different sizes ({w}x{h} in "
                f"{printable_name(shown[first - 1])}, {mw}x{mh} in {printable_name(shown[i])}); pass --image-size N "
                "to resize and centre-crop them to N x N",
                ((w, h), (mw, mh)),
            )
        ok[done] = True
        errors.update(errs)
    ok_idx = torch.from_numpy(np.flatnonzero(ok)).to(torch.int64)
    if ok_idx.numel() != n:
        images = images.index_select(0, ok_idx)
    skipped = [(shown[i], errors[i]) for i in sorted(errors)]
    return images, ok_idx, skipped


def default_image_size(shorter_sides: Sequence[int]) -> int:
    """The standard image size for a folder whose images have these shorter sides (pixels): the
    largest of :data:`STANDARD_IMAGE_SIZES` not above their median, and 32 at the least.

    Rounding down shrinks the typical image rather than enlarging it, so random crops stay sharp
    (upscaling only adds blur); the standard sizes are those the backbone stems and recipes are
    made for (CIFAR 32 px, STL-10 96 px, ImageNet 224 px), and larger photos are cut down to 224.

    >>> default_image_size([131, 90, 400])
    128
    >>> [default_image_size([side]) for side in (20, 70, 100, 3000)]
    [32, 64, 96, 224]
    """
    if not shorter_sides:
        raise ValueError("default_image_size needs the shorter side of at least one image")
    typical = statistics.median_low(shorter_sides)
    fitting = [size for size in STANDARD_IMAGE_SIZES if size <= typical]
    return fitting[-1] if fitting else STANDARD_IMAGE_SIZES[0]


def _header_size(path: Path) -> tuple[int, int] | None:
    """``(width, height)`` as decoded (EXIF rotation applied) from the header alone; ``None`` when
    unreadable, leaving the file to the decoder, which skips and counts it."""
    try:
        with Image.open(path) as img:
            w, h = img.size
            # Only where the decoder applies EXIF rotation; PNG's getexif() would decode the pixels.
            if ("exif" in img.info or img.format == "TIFF") and img.getexif().get(_EXIF_ORIENTATION) in (5, 6, 7, 8):
                w, h = h, w
            return w, h
    except Exception:  # PIL reports bad files through many exception types; the decoder names the reason
        return None


def _sampled_sizes(root: Path, rel: Sequence[str]) -> list[tuple[int, int]]:
    """Header sizes of up to :data:`_HEADER_SAMPLE` readable files spread evenly over ``rel``
    (sorted by class folder, so every class is represented; the same files on every call)."""
    n = len(rel)
    picks = range(n) if n <= _HEADER_SAMPLE else np.linspace(0, n - 1, _HEADER_SAMPLE).round().astype(int).tolist()
    sizes = [_header_size(root / rel[i]) for i in picks]
    return [size for size in sizes if size is not None]


def _auto_image_size(sizes: Sequence[tuple[int, int]]) -> int | None:
    """The size to decode a folder at when none is given, from its sampled header sizes: ``None``
    (native) when they all agree, else :func:`default_image_size` of their shorter sides.

    All ``N x N`` gives ``N`` rather than ``None``: the same pixels, but a file outside the
    sample that differs is resized to match instead of failing the whole load.
    """
    distinct = set(sizes)
    if len(distinct) > 1:
        return default_image_size([min(size) for size in sizes])
    if distinct:
        w, h = distinct.pop()
        return w if w == h else None
    return None


@dataclass(frozen=True)
class FolderEstimate:
    """How big a folder's training split would be in memory, from its listing and a sample of headers."""

    images: int
    height: int
    width: int

    @property
    def decoded_bytes(self) -> int:
        return self.images * 3 * self.height * self.width


def estimate_folder(
    root: Path, image_size: int | None = None, *, follow_external_links: bool = False
) -> FolderEstimate:
    """The training split of ``root`` (its ``train/`` when it has splits) as :func:`load_split_folder` or
    :func:`load_image_folder` would decode it, without decoding anything."""
    root = _check_folder(Path(root))
    train = find_split_folder(root, "train") if has_split_layout(root) else root
    assert train is not None
    rel = scan_image_folder(train, follow_external_links=follow_external_links, data_root=root).paths
    if image_size is None:
        sizes = _sampled_sizes(train, rel)
        image_size = _auto_image_size(sizes)
        if image_size is None and sizes:
            width, height = sizes[0]
            return FolderEstimate(len(rel), height, width)
    side = image_size or 0
    return FolderEstimate(len(rel), side, side)


def _log_default_size(root: Path, shorter_sides: Sequence[int], image_size: int) -> None:
    log.info(
        "image folder %s: images of mixed sizes (shorter side median %d px, %d files sampled); using --image-size %d "
        "(resize shorter side + centre crop); pass --image-size N to choose",
        printable_name(str(root)),
        statistics.median_low(shorter_sides),
        len(shorter_sides),
        image_size,
    )


def load_image_folder(
    root: Path,
    image_size: int | None = None,
    limit_per_class: int | None = None,
    workers: int = 0,
    *,
    limit: int | None = None,
    seed: int = 0,
    class_names: Sequence[str] | None = None,
    follow_external_links: bool = False,
    resize: str = "crop",
) -> ImageStore:
    """Decode every image below ``root`` into an :class:`ImageStore` (see the module docstring for
    how class sub-folders are recognised, and :func:`scan_image_folder` for what is skipped).

    ``image_size``: resize the shorter side (bilinear, antialiased) and centre-crop to a square
    (``resize="squash"``: resize both sides to it instead);
    ``None`` keeps the native size when all images share one, else uses :func:`default_image_size`
    of the shorter sides of (a sample of) the whole folder, before any limit, and logs that choice.
    ``limit_per_class``: keep the first k files (sorted) of every class (of the folder when
    unlabeled). ``limit``: a stratified random subset of that many files chosen with ``seed``
    before decoding. Undecodable files are skipped, so a limited store may hold fewer images.
    ``follow_external_links``: also read files that links lead to outside ``root``.
    """
    listing = scan_image_folder(root, class_names, follow_external_links=follow_external_links)
    return _load_listed(Path(root).expanduser(), listing, image_size, limit_per_class, workers, limit, seed, resize)


def _skip_example(skipped: Sequence[tuple[str, str]]) -> str:
    """`` (e.g. NAME: REASON)`` for the first skipped entry, made printable: error messages stay one line."""
    if not skipped:
        return ""
    return f" (e.g. {printable_name(skipped[0][0])}: {printable_name(skipped[0][1])})"


def _no_image_files(root: Path, listing: FolderListing) -> UserError:
    count = len(listing.skipped)
    left_out = f"; {count} skipped{_skip_example(listing.skipped)}" if count else ""
    return UserError(
        f"no image files ({_EXT_LIST}) found in {printable_name(str(root))}{left_out}; point --data-dir at a "
        "folder of images or of class sub-folders"
    )


def _no_readable_image(root: Path, skipped: Sequence[tuple[str, str]]) -> UserError:
    return UserError(
        f"no readable image in {printable_name(str(root))}: {len(skipped)} file(s) skipped"
        f"{_skip_example(skipped)}; point --data-dir at a folder of valid images"
    )


FOLDER_CHUNK = 4096  # images decoded at once when a folder is read piece by piece


def image_folder_chunks(
    root: Path,
    image_size: int,
    workers: int = 0,
    *,
    chunk: int = FOLDER_CHUNK,
    follow_external_links: bool = False,
) -> Iterator[ImageStore]:
    """Every image below ``root`` at ``image_size``, as :func:`load_image_folder` lists and decodes them, but
    ``chunk`` files at a time, so a folder of any size is read once without being held (``simclr embed``).
    Each piece carries its file names and what was skipped in it (the first piece also the listing's); the
    same one-line errors as :func:`load_image_folder` when there is nothing to read."""
    root = Path(root).expanduser()
    listing = scan_image_folder(root, follow_external_links=follow_external_links)
    if not listing.paths:
        raise _no_image_files(root, listing)
    decoded = 0
    skipped_so_far: list[tuple[str, str]] = list(listing.skipped)
    for start in range(0, len(listing.paths), chunk):
        rel = listing.paths[start : start + chunk]
        images, ok_idx, skipped = decode_files(
            [root / r for r in rel], image_size=image_size, workers=workers, names=rel, where=root
        )
        decoded += int(ok_idx.numel())
        piece_skipped = (listing.skipped if start == 0 else []) + skipped
        skipped_so_far += skipped
        yield ImageStore(
            images=images,
            labels=listing.labels[start : start + chunk].index_select(0, ok_idx),
            class_names=listing.class_names,
            file_names=[rel[i] for i in ok_idx.tolist()],
            skipped=piece_skipped,
        )
    if decoded == 0:
        raise _no_readable_image(root, skipped_so_far)


def _load_listed(
    root: Path,
    listing: FolderListing,
    image_size: int | None,
    limit_per_class: int | None,
    workers: int,
    limit: int | None,
    seed: int,
    resize: str = "crop",
) -> ImageStore:
    """:func:`load_image_folder` of a folder already listed (the listing's skipped entries come first in
    ``ImageStore.skipped``, then the undecodable files)."""
    rel, labels, names = listing.paths, listing.labels, listing.class_names
    if not rel:
        raise _no_image_files(root, listing)
    sampled: list[tuple[int, int]] = []
    if image_size is None:
        # From the whole folder, not the limited subset: every limit and the sibling split agree.
        sampled = _sampled_sizes(root, rel)
        image_size = _auto_image_size(sampled)
        if image_size is not None and len(set(sampled)) > 1:
            _log_default_size(root, [min(size) for size in sampled], image_size)
    if limit_per_class is not None:
        keep = _limit_per_class(labels, limit_per_class)
        rel = [rel[i] for i in keep.tolist()]
        labels = labels[keep]
    if limit is not None:
        keep = stratified_subset(labels, limit, seed)
        rel = [rel[i] for i in keep.tolist()]
        labels = labels[keep]
    paths = [root / r for r in rel]
    try:
        images, ok_idx, skipped = decode_files(
            paths, image_size=image_size, workers=workers, names=rel, where=root, resize=resize
        )
    except _MixedSizesError as e:
        # The header sample looked uniform, but a file outside it (or one whose header disagrees
        # with its pixels) has another size: decode again at the default size.
        shorter_sides = [min(size) for size in sampled or e.sizes]
        image_size = default_image_size(shorter_sides)
        _log_default_size(root, shorter_sides, image_size)
        images, ok_idx, skipped = decode_files(
            paths, image_size=image_size, workers=workers, names=rel, where=root, resize=resize
        )
    skipped = listing.skipped + skipped
    if ok_idx.numel() == 0:
        raise _no_readable_image(root, skipped)
    return ImageStore(
        images=images,
        labels=labels.index_select(0, ok_idx),
        class_names=names,
        file_names=[rel[i] for i in ok_idx.tolist()],
        skipped=skipped,
    )


def find_split_folder(root: Path, split: str) -> Path | None:
    """``root/train`` for ``train``; ``root/test``, ``root/val``, ``root/valid`` or
    ``root/validation`` (first that exists) for ``test``; ``None`` when absent."""
    for name in _SPLIT_DIRS.get(split, (split,)):
        candidate = Path(root) / name
        if candidate.is_dir():
            return candidate
    return None


def has_split_layout(root: Path) -> bool:
    """True when ``root`` has ``train/`` and ``test/`` (or ``val/``) sub-folders."""
    root = Path(root)
    return find_split_folder(root, "train") is not None and find_split_folder(root, "test") is not None


def load_split_folder(
    root: Path,
    split: str,
    image_size: int | None = None,
    limit_per_class: int | None = None,
    workers: int = 0,
    *,
    limit: int | None = None,
    seed: int = 0,
    follow_external_links: bool = False,
    resize: str = "crop",
) -> ImageStore:
    """Load ``split`` of a ``root/{train,test}/<class>/*`` layout (``test`` may be ``val``).

    The test split reuses the train split's class numbering, and without ``image_size`` the size
    :func:`load_image_folder` picks for the train split, so labels and sizes agree across splits.
    Links between the splits stay inside ``root`` and are followed; ``follow_external_links`` also
    follows those leading outside it.
    """
    root = _check_folder(root, "data folder")
    folder = find_split_folder(root, split)
    if folder is None:
        wanted = "/ or ".join(_SPLIT_DIRS.get(split, (split,)))
        raise UserError(
            f"no {wanted}/ folder in {printable_name(str(root))}; point --data-dir at a folder with train/ and test/ "
            "sub-folders"
        )
    class_names = None
    train = find_split_folder(root, "train")
    if split != "train" and train is not None:
        listed = scan_image_folder(train, follow_external_links=follow_external_links, data_root=root)
        class_names = listed.class_names or None
        if image_size is None:
            image_size = _auto_image_size(_sampled_sizes(train, listed.paths))
    listing = scan_image_folder(folder, class_names, follow_external_links=follow_external_links, data_root=root)
    return _load_listed(folder, listing, image_size, limit_per_class, workers, limit, seed, resize)
