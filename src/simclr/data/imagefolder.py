"""Loading a folder of images into an :class:`~simclr.data.store.ImageStore`.

The folder is listed by :mod:`simclr.data.folder_listing` (its layout rules: class sub-folders or not,
links, skipped entries), its image size chosen by :mod:`simclr.data.image_sizes` when none is given, and
its files decoded by :func:`~simclr.data.parallel_decode.decode_files`. Files that cannot be decoded are
skipped and listed in ``ImageStore.skipped``, after the entries the listing left out.

Image size: a given ``image_size`` resizes every image (shorter side, then centre crop). Without one,
a folder whose images all share one size keeps it; a folder of mixed sizes gets
:func:`~simclr.data.image_sizes.default_image_size` of its images' shorter sides, read from the file headers
of a sample.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from functools import partial
from pathlib import Path

import torch

from simclr.data.decode import IMAGE_EXTENSIONS
from simclr.data.folder_listing import (
    SPLIT_FOLDERS,
    FolderListing,
    checked_folder,
    find_split_folder,
    has_split_layout,
    scan_image_folder,
)
from simclr.data.image_sizes import auto_image_size, default_image_size, log_default_size, sampled_sizes
from simclr.data.parallel_decode import MixedSizesError, decode_files
from simclr.data.request import LoadRequest
from simclr.data.sampling import stratified_subset
from simclr.data.store import ImageStore, printable_name
from simclr.errors import UserError
from simclr.progress import logged_progress

__all__ = ["FOLDER_CHUNK", "image_folder_chunks", "load_image_folder", "load_imagefolder", "load_split_folder"]

_EXT_LIST = ", ".join(sorted(e.lstrip(".") for e in IMAGE_EXTENSIONS))


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
    how class sub-folders are recognised, and :func:`~simclr.data.folder_listing.scan_image_folder` for what
    is skipped).

    ``image_size``: resize the shorter side (bilinear, antialiased) and centre-crop to a square
    (``resize="squash"``: resize both sides to it instead); ``None`` keeps the native size when all images
    share one, else uses :func:`~simclr.data.image_sizes.default_image_size` of the shorter sides of (a sample
    of) the whole folder, before any limit, and logs that choice.
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
    advance: Callable[[int, int], None] | None = None,
) -> Iterator[ImageStore]:
    """Every image below ``root`` at ``image_size``, as :func:`load_image_folder` lists and decodes them, but
    ``chunk`` files at a time, so a folder of any size is read once without being held (``simclr embed``).
    Each piece carries its file names and what was skipped in it (the first piece also the listing's); the
    same one-line errors as :func:`load_image_folder` when there is nothing to read. ``advance(done, total)``
    is told how many of the listed files have been read once each piece is yielded."""
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
        if advance is not None:
            advance(start + len(rel), len(listing.paths))
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
        sampled = sampled_sizes(root, rel)
        image_size = auto_image_size(sampled)
        if image_size is not None and len(set(sampled)) > 1:
            log_default_size(root, [min(size) for size in sampled], image_size)
    if limit_per_class is not None:
        keep = _limit_per_class(labels, limit_per_class)
        rel = [rel[i] for i in keep.tolist()]
        labels = labels[keep]
    if limit is not None:
        keep = stratified_subset(labels, limit, seed)
        rel = [rel[i] for i in keep.tolist()]
        labels = labels[keep]
    paths = [root / r for r in rel]
    # a large folder takes minutes to decode: said per tenth once it has taken a few seconds
    decoding = partial(logged_progress("decoding"), printable_name(str(root)))
    try:
        images, ok_idx, skipped = decode_files(
            paths, image_size=image_size, workers=workers, names=rel, where=root, resize=resize, progress=decoding
        )
    except MixedSizesError as e:
        # The header sample looked uniform, but a file outside it (or one whose header disagrees
        # with its pixels) has another size: decode again at the default size.
        shorter_sides = [min(size) for size in sampled or e.sizes]
        image_size = default_image_size(shorter_sides)
        log_default_size(root, shorter_sides, image_size)
        images, ok_idx, skipped = decode_files(
            paths, image_size=image_size, workers=workers, names=rel, where=root, resize=resize, progress=decoding
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
    root = checked_folder(root, "data folder")
    folder = find_split_folder(root, split)
    if folder is None:
        wanted = "/ or ".join(SPLIT_FOLDERS.get(split, (split,)))
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
            image_size = auto_image_size(sampled_sizes(train, listed.paths))
    listing = scan_image_folder(folder, class_names, follow_external_links=follow_external_links, data_root=root)
    return _load_listed(folder, listing, image_size, limit_per_class, workers, limit, seed, resize)


def load_imagefolder(request: LoadRequest) -> ImageStore | None:
    """The catalog's ``imagefolder``: ``request.data_dir`` with ``train/`` and ``test/`` (or ``val/``), or one
    folder (its ``train/`` when it has one) that is all training data, without a test split (None)."""
    if request.data_dir is None:
        raise UserError("imagefolder needs a folder of images; pass --data-dir DIR")
    root = Path(request.data_dir).expanduser()
    if not root.is_dir():
        raise UserError(f"image folder {root} does not exist; point --data-dir at an existing folder")
    if has_split_layout(root):
        return load_split_folder(
            root,
            request.folder_split,
            image_size=request.image_size,
            workers=request.workers,
            limit=request.limit,
            seed=request.seed,
            follow_external_links=request.follow_links,
            resize=request.resize,
        )
    if request.split == "test":
        return None
    train = root / "train" if (root / "train").is_dir() else root
    return load_image_folder(
        train,
        image_size=request.image_size,
        workers=request.workers,
        limit=request.limit,
        seed=request.seed,
        follow_external_links=request.follow_links,
        resize=request.resize,
    )
