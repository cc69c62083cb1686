"""Listing a folder of images, without decoding them: which files, with which labels, and what is left out.

Layout rules:

* **Labelled**: the folder holds no image files itself and at least two of its direct
  sub-folders hold image files directly. Every direct sub-folder holding images (at any depth) is
  then a class; classes are numbered in sorted name order, images are gathered recursively.
* **Unlabeled**: anything else (a flat folder, a single sub-folder, a nested tree whose first
  level holds no images): every image below the folder is taken, labels are -1.
* Hidden files and folders (name starting with ``.``, e.g. macOS ``._x.jpg`` forks) are ignored;
  extensions are matched case-insensitively (see :data:`~simclr.data.decode.IMAGE_EXTENSIONS`).
* Every real file is listed once, under the first path the sorted walk meets it by: links and hard links
  never repeat an image, and a link loop never relabels one. Links leading outside the data folder are
  skipped unless asked for (``follow_external_links``); so are dangling links, FIFOs and other special
  files with image names (never opened: a FIFO would block), and folders that cannot be read. All of
  them are counted and named in the listing's ``skipped``, never dropped silently.

A folder with ``train/`` and ``test/`` (or ``val/``) sub-folders has splits (:func:`has_split_layout`).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from simclr.data.decode import is_image_file
from simclr.data.store import printable_name, report_skipped
from simclr.errors import UserError

__all__ = [
    "FolderListing",
    "checked_folder",
    "find_split_folder",
    "folder_class_names",
    "has_split_layout",
    "list_image_folder",
    "scan_image_folder",
]

SPLIT_FOLDERS = {
    "train": ("train",),
    "test": ("test", "val", "valid", "validation"),
    "val": ("val", "valid", "validation"),
}

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


def checked_folder(root: Path, what: str = "image folder") -> Path:
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
    root = checked_folder(root)
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


def find_split_folder(root: Path, split: str) -> Path | None:
    """``root/train`` for ``train``; ``root/test``, ``root/val``, ``root/valid`` or
    ``root/validation`` (first that exists) for ``test``; ``None`` when absent."""
    for name in SPLIT_FOLDERS.get(split, (split,)):
        candidate = Path(root) / name
        if candidate.is_dir():
            return candidate
    return None


def has_split_layout(root: Path) -> bool:
    """True when ``root`` has ``train/`` and ``test/`` (or ``val/``) sub-folders."""
    root = Path(root)
    return find_split_folder(root, "train") is not None and find_split_folder(root, "test") is not None
