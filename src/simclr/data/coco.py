"""Turning a COCO object-detection export into an image folder of object crops.

A Roboflow COCO export holds ``IN_DIR/{train,valid,test}/`` with an ``_annotations.coco.json`` and
the images of each split. Every annotated box becomes one JPEG at
``OUT_DIR/<split>/<class>/<image stem>_<annotation id>.jpg`` so the result loads as a labelled image
folder (:func:`simclr.data.imagefolder.load_image_folder`): this is how the PyTorch SimCLR fork for
firefighting-device schematics (docs/SOURCES.md) made its ``ff_devices`` data.

What it does, and why:

* The box ``[x, y, w, h]`` is padded by ``pad * w`` left and right and ``pad * h`` top and bottom
  (symmetric, unlike that fork's left/top-only quirk), clipped to the image, and widened to whole
  pixels outwards (floor / ceil) so the object is never cut.
* The export is input from elsewhere, so it is reported, never obeyed: a ``file_name`` that resolves
  outside its split folder, a missing or undecodable image, an empty, non-finite or off-image box,
  an unknown category or image id are each skipped and recorded with their reason (``skipped.csv``);
  only the well-formed annotations are cropped. Class names and file stems are sanitised, and
  every output path is checked to stay inside ``OUT_DIR``.
* Categories no annotation uses (Roboflow's super-category at id 0) simply get no folder.
* ``one_shot`` keeps one crop per class in ``train`` (chosen with ``seed``) and every crop in the
  other splits: that fork's one-shot experiment.
* ``OUT_DIR`` must not already hold a previous extraction unless ``overwrite``, which first removes
  it, so crops of two runs never mix.
* At most ``max_crops`` crops are written (default 100,000): an export of a few megabytes can ask for
  millions of boxes, and a disk filled with tiny JPEGs is worse than a run that stops, says so and
  still writes its ``summary.csv`` / ``skipped.csv``.
"""

from __future__ import annotations

import csv
import json
import math
import os
import random
import re
import shutil
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from simclr.atomic import atomic_write
from simclr.data.decode import ImageDecodeError, decode_image
from simclr.errors import UserError

__all__ = [
    "ANNOTATION_FILE",
    "COCO_SPLITS",
    "CropSummary",
    "SkippedAnnotation",
    "extract_coco_crops",
    "padded_box",
    "sanitize_name",
]

ANNOTATION_FILE = "_annotations.coco.json"
COCO_SPLITS: tuple[str, ...] = ("train", "valid", "test")
SUMMARY_FILE = "summary.csv"
SKIPPED_FILE = "skipped.csv"
DEFAULT_MAX_CROPS = 100_000

# Reasons an annotation is skipped (the values in skipped.csv).
UNSAFE_PATH = "file_name outside split folder"
BAD_IMAGE_ENTRY = "malformed image entry"
MISSING_IMAGE = "missing image"
UNDECODABLE_IMAGE = "undecodable image"
BAD_ANNOTATION = "malformed annotation"
DUPLICATE_ID = "duplicate annotation id"
UNKNOWN_IMAGE = "unknown image id"
UNKNOWN_CATEGORY = "unknown category id"
MALFORMED_BOX = "malformed box"
NON_FINITE_BOX = "non-finite box"
EMPTY_BOX = "empty box"
OUTSIDE_BOX = "box outside image"
TOO_SMALL = "smaller than min-size"

_UNSAFE_CHARS = re.compile(r"[\x00-\x1f\x7f/\\:*?\"<>|]")
_MAX_NAME = 100


@dataclass(frozen=True)
class SkippedAnnotation:
    """One annotation that produced no crop, and why."""

    split: str
    file_name: str
    annotation_id: str
    reason: str


@dataclass
class CropSummary:
    """What :func:`extract_coco_crops` wrote (``crops[split][class]`` counts) and what it skipped."""

    out_dir: Path
    crops: dict[str, dict[str, int]] = field(default_factory=dict)
    skipped: list[SkippedAnnotation] = field(default_factory=list)
    missing_splits: list[str] = field(default_factory=list)
    not_selected: int = 0  # valid train annotations left out by one-shot selection
    stopped_at_max: bool = False  # max_crops crops were written and annotations were left over

    @property
    def total(self) -> int:
        return sum(sum(per_class.values()) for per_class in self.crops.values())

    def skipped_by_reason(self) -> dict[str, int]:
        """Skip counts per reason, most frequent first."""
        return dict(Counter(s.reason for s in self.skipped).most_common())


@dataclass(frozen=True)
class _Job:
    """One annotation that passed the checks that need no pixels."""

    file_name: str
    image_path: str
    annotation_id: str
    class_name: str
    box: tuple[float, float, float, float]


def sanitize_name(name: str, fallback: str = "unnamed") -> str:
    """A single, visible path component made from ``name``: no separators, control characters,
    ``..`` or leading dot (image folders ignore hidden folders), never empty, at most 100 chars."""
    clean = _UNSAFE_CHARS.sub("_", name).strip()
    clean = re.sub(r"^\.+", lambda m: "_" * len(m.group()), clean)[:_MAX_NAME]
    return clean or fallback


def padded_box(box: Sequence[float], pad: float, width: int, height: int) -> tuple[int, int, int, int] | None:
    """``(left, top, right, bottom)`` pixel bounds of the COCO box ``[x, y, w, h]`` padded by
    ``pad`` of its size on every side, clipped to a ``width`` x ``height`` image and rounded
    outwards; ``None`` when the box does not overlap the image.

    >>> padded_box([10, 10, 20, 10], 0.1, 64, 48)
    (8, 9, 32, 21)
    >>> padded_box([60, 0, 10, 10], 0.0, 64, 48)
    (60, 0, 64, 10)
    """
    x, y, w, h = (float(v) for v in box)
    if x >= width or y >= height or x + w <= 0 or y + h <= 0:
        return None
    left = max(0, math.floor(x - pad * w))
    top = max(0, math.floor(y - pad * h))
    right = min(width, math.ceil(x + w + pad * w))
    bottom = min(height, math.ceil(y + h + pad * h))
    return left, top, right, bottom


def _read_annotations(path: Path) -> tuple[list[Any], list[Any], list[Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except RecursionError:  # json recurses per nesting level; a hostile file nests 200,000 deep
        raise UserError(
            f"cannot read COCO annotations {path}: nested too deeply for a COCO file; "
            "re-export the dataset in COCO JSON format"
        ) from None
    except (OSError, ValueError) as e:  # ValueError: bad JSON, not UTF-8, an integer of 5000 digits
        raise UserError(
            f"cannot read COCO annotations {path}: {e}; re-export the dataset in COCO JSON format"
        ) from None
    keys = ("images", "annotations", "categories")
    lists = [data[key] for key in keys if isinstance(data, dict) and isinstance(data.get(key), list)]
    if len(lists) != len(keys):
        raise UserError(
            f"{path} is not a COCO annotation file (needs 'images', 'annotations' and 'categories' "
            "lists); re-export the dataset in COCO JSON format"
        )
    return lists[0], lists[1], lists[2]


def _is_id(value: Any) -> bool:
    return isinstance(value, (int, str)) and not isinstance(value, bool)


def _class_names(categories: Iterable[Any]) -> dict[Any, str]:
    """Category id -> sanitised folder name; distinct names that sanitise alike get ``-<id>``."""
    raw: dict[Any, str] = {}
    for cat in categories:
        if isinstance(cat, dict) and _is_id(cat.get("id")) and cat["id"] not in raw:
            raw[cat["id"]] = str(cat.get("name", ""))
    owner: dict[str, str] = {}
    names: dict[Any, str] = {}
    for cat_id, name in raw.items():
        clean = sanitize_name(name, fallback=f"category_{sanitize_name(str(cat_id))}")
        if owner.setdefault(clean, name) != name:
            clean = sanitize_name(f"{clean}-{cat_id}")
        names[cat_id] = clean
    return names


def _inside(path: str, root: str) -> bool:
    return os.path.commonpath([path, root]) == root


def _resolve_image(split_dir: Path, file_name: Any) -> tuple[str | None, str | None]:
    """(real path, None) for a file inside ``split_dir``, else (None, reason)."""
    if not isinstance(file_name, str) or not file_name:
        return None, BAD_IMAGE_ENTRY
    root = os.path.realpath(split_dir)
    try:
        real = os.path.realpath(os.path.join(root, file_name))
    except (ValueError, OSError):  # NUL bytes, unresolvable names
        return None, UNSAFE_PATH
    if os.path.isabs(file_name) or not _inside(real, root) or real == root:
        return None, UNSAFE_PATH
    if not os.path.isfile(real):
        return None, MISSING_IMAGE
    return real, None


def _check_box(bbox: Any) -> tuple[tuple[float, float, float, float] | None, str | None]:
    if not isinstance(bbox, list) or len(bbox) != 4:
        return None, MALFORMED_BOX
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in bbox):
        return None, MALFORMED_BOX
    x, y, w, h = (float(v) for v in bbox)
    if not all(math.isfinite(v) for v in (x, y, w, h)):
        return None, NON_FINITE_BOX
    if w <= 0 or h <= 0:
        return None, EMPTY_BOX
    return (x, y, w, h), None


def _plan_split(split: str, split_dir: Path) -> tuple[list[_Job], list[SkippedAnnotation]]:
    """Every annotation of a split as a crop job or a skip, without decoding any image."""
    images, annotations, categories = _read_annotations(split_dir / ANNOTATION_FILE)
    classes = _class_names(categories)
    files: dict[Any, Any] = {}
    for img in images:
        if isinstance(img, dict) and _is_id(img.get("id")):
            files.setdefault(img["id"], img.get("file_name"))
    resolved: dict[Any, tuple[str | None, str | None]] = {}
    jobs: list[_Job] = []
    skipped: list[SkippedAnnotation] = []
    seen_ids: set[str] = set()
    for index, ann in enumerate(annotations):
        if not isinstance(ann, dict):
            skipped.append(SkippedAnnotation(split, "", f"#{index}", BAD_ANNOTATION))
            continue
        ann_id = str(ann["id"]) if _is_id(ann.get("id")) else f"#{index}"
        image_id = ann.get("image_id")
        file_name = files.get(image_id) if _is_id(image_id) else None
        shown = file_name if isinstance(file_name, str) else ""

        def skip(reason: str, shown: str = shown, ann_id: str = ann_id) -> None:
            skipped.append(SkippedAnnotation(split, shown, ann_id, reason))

        if not _is_id(ann.get("id")):
            skip(BAD_ANNOTATION)
            continue
        if ann_id in seen_ids:
            skip(DUPLICATE_ID)
            continue
        seen_ids.add(ann_id)
        if not _is_id(image_id) or image_id not in files:
            skip(UNKNOWN_IMAGE)
            continue
        if image_id not in resolved:
            resolved[image_id] = _resolve_image(split_dir, file_name)
        path, problem = resolved[image_id]
        if problem is not None or path is None:
            skip(problem or UNSAFE_PATH)
            continue
        cat_id = ann.get("category_id")
        if not _is_id(cat_id) or cat_id not in classes:
            skip(UNKNOWN_CATEGORY)
            continue
        box, problem = _check_box(ann.get("bbox"))
        if box is None:
            skip(problem or MALFORMED_BOX)
            continue
        jobs.append(_Job(shown, path, ann_id, classes[cat_id], box))
    return jobs, skipped


def _one_per_class(jobs: list[_Job], seed: int) -> list[list[_Job]]:
    """Per class (sorted by name), its jobs in a seeded random order: try them until one crops."""
    by_class: dict[str, list[_Job]] = {}
    for job in jobs:
        by_class.setdefault(job.class_name, []).append(job)
    rng = random.Random(seed)
    ordered = []
    for name in sorted(by_class):
        candidates = list(by_class[name])
        rng.shuffle(candidates)
        ordered.append(candidates)
    return ordered


def _by_image(jobs: list[_Job]) -> list[_Job]:
    """Jobs grouped by image (in order of first appearance) so each image is decoded once."""
    first: dict[str, int] = {}
    for job in jobs:
        first.setdefault(job.image_path, len(first))
    return sorted(jobs, key=lambda job: first[job.image_path])


class _CropLimitReached(Exception):
    """A crop was due after ``max_crops`` were written."""


class _Cropper:
    """Decodes each image once (for its run of jobs) and writes crops below one split folder, at most
    ``room`` of them (:class:`_CropLimitReached` when one more is due)."""

    def __init__(self, split: str, out_dir: Path, pad: float, min_size: int, quality: int, room: int) -> None:
        self.split = split
        self.root = os.path.realpath(out_dir)
        self.split_dir = out_dir / split
        self.pad, self.min_size, self.quality, self.room = pad, min_size, quality, room
        self.counts: Counter[str] = Counter()
        self.skipped: list[SkippedAnnotation] = []
        self._cached: tuple[str, np.ndarray | None] | None = None

    def _pixels(self, path: str) -> np.ndarray | None:
        if self._cached is None or self._cached[0] != path:
            try:
                self._cached = (path, decode_image(path))
            except ImageDecodeError:
                self._cached = (path, None)
        return self._cached[1]

    def _skip(self, job: _Job, reason: str) -> bool:
        self.skipped.append(SkippedAnnotation(self.split, job.file_name, job.annotation_id, reason))
        return False

    def crop(self, job: _Job) -> bool:
        """Write the crop of ``job``; False (and a recorded skip) when it cannot be made."""
        if self.counts.total() >= self.room:
            raise _CropLimitReached
        pixels = self._pixels(job.image_path)
        if pixels is None:
            return self._skip(job, UNDECODABLE_IMAGE)
        height, width = pixels.shape[:2]
        bounds = padded_box(job.box, self.pad, width, height)
        if bounds is None:
            return self._skip(job, OUTSIDE_BOX)
        left, top, right, bottom = bounds
        if right - left < self.min_size or bottom - top < self.min_size:
            return self._skip(job, TOO_SMALL)
        class_dir = self.split_dir / job.class_name
        class_dir.mkdir(parents=True, exist_ok=True)
        if not _inside(os.path.realpath(class_dir), self.root):
            raise UserError(f"{class_dir} leads outside {self.root} (a symlink?); choose an empty output folder")
        stem = sanitize_name(Path(job.file_name.replace("\\", "/")).stem, fallback="image")
        target = class_dir / f"{stem}_{sanitize_name(job.annotation_id)}.jpg"
        crop = Image.fromarray(np.ascontiguousarray(pixels[top:bottom, left:right]))
        with atomic_write(target, durable=False) as partial:  # a rerun re-makes a crop a power cut lost
            crop.save(partial, format="JPEG", quality=self.quality)
        self.counts[job.class_name] += 1
        return True


def _prepare_out_dir(out_dir: Path, overwrite: bool) -> None:
    """Refuse to mix with an earlier extraction; with ``overwrite`` remove that extraction first."""
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"output {out_dir} is a file; pass a folder for OUT_DIR")
    previous = [out_dir / name for name in (*COCO_SPLITS, SUMMARY_FILE, SKIPPED_FILE)]
    previous = [p for p in previous if p.exists() or p.is_symlink()]
    if previous and not overwrite:
        raise UserError(
            f"{out_dir} already holds crops ({previous[0].name}); pass --overwrite to replace them "
            "or choose another OUT_DIR"
        )
    for path in previous:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    out_dir.mkdir(parents=True, exist_ok=True)


def _write_csvs(summary: CropSummary) -> None:
    with atomic_write(summary.out_dir / SUMMARY_FILE) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["split", "class", "crops"])
        for split, per_class in summary.crops.items():
            for name in sorted(per_class):
                writer.writerow([split, name, per_class[name]])
    with atomic_write(summary.out_dir / SKIPPED_FILE) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["split", "file_name", "annotation_id", "reason"])
        for s in summary.skipped:
            writer.writerow([s.split, s.file_name, s.annotation_id, s.reason])


def extract_coco_crops(
    in_dir: Path,
    out_dir: Path,
    *,
    pad: float = 0.05,
    min_size: int = 1,
    one_shot: bool = False,
    seed: int = 0,
    quality: int = 95,
    overwrite: bool = False,
    max_crops: int = DEFAULT_MAX_CROPS,
) -> CropSummary:
    """Crop every valid annotation of the COCO export in ``in_dir`` into an image folder in
    ``out_dir`` (see the module docstring); returns the counts, also saved as ``summary.csv`` and
    ``skipped.csv``. Raises :class:`UserError` for bad arguments, no split folder, a malformed
    annotation file or an ``out_dir`` that already holds crops (without ``overwrite``). Stops after
    ``max_crops`` crops (``summary.stopped_at_max``): a hostile export can ask for millions of boxes.
    """
    if not (math.isfinite(pad) and pad >= 0):
        raise UserError(f"--pad must be a finite fraction >= 0, got {pad}; e.g. --pad 0.05")
    if min_size < 1:
        raise UserError(f"--min-size must be >= 1 pixel, got {min_size}")
    if not 1 <= quality <= 100:
        raise UserError(f"--quality must be within 1..100, got {quality}; e.g. --quality 95")
    if max_crops < 1:
        raise UserError(f"--max-crops must be >= 1, got {max_crops}; e.g. --max-crops {DEFAULT_MAX_CROPS}")
    in_dir, out_dir = Path(in_dir).expanduser(), Path(out_dir).expanduser()
    if not in_dir.is_dir():
        raise UserError(f"COCO export {in_dir} is not a folder; pass the folder holding train/ valid/ test/")
    present = [s for s in COCO_SPLITS if (in_dir / s / ANNOTATION_FILE).is_file()]
    if not present:
        raise UserError(
            f"no split with {ANNOTATION_FILE} in {in_dir}; pass the folder of a Roboflow COCO "
            "export holding train/, valid/ and/or test/"
        )
    if _inside(os.path.realpath(in_dir), os.path.realpath(out_dir)):
        raise UserError(
            f"OUT_DIR {out_dir} holds the COCO export {in_dir}, which --overwrite would delete; "
            "choose an OUT_DIR outside it"
        )
    plans = {split: _plan_split(split, in_dir / split) for split in present}  # all JSON read first
    _prepare_out_dir(out_dir, overwrite)
    summary = CropSummary(out_dir, missing_splits=[s for s in COCO_SPLITS if s not in present])
    for split, (jobs, skipped) in plans.items():
        cropper = _Cropper(split, out_dir, pad, min_size, quality, room=max_crops - summary.total)
        try:
            _crop_split(cropper, jobs, summary, one_shot=one_shot and split == "train", seed=seed)
        except _CropLimitReached:
            summary.stopped_at_max = True
        summary.crops[split] = dict(sorted(cropper.counts.items()))
        summary.skipped.extend(skipped + cropper.skipped)
        if summary.stopped_at_max:
            break
    _write_csvs(summary)
    return summary


def _crop_split(cropper: _Cropper, jobs: list[_Job], summary: CropSummary, *, one_shot: bool, seed: int) -> None:
    """Crop a split's jobs: every one, or (``one_shot``) the first that crops per class."""
    if not one_shot:
        for job in _by_image(jobs):
            cropper.crop(job)
        return
    for candidates in _one_per_class(jobs, seed):
        for tried, job in enumerate(candidates, start=1):
            if cropper.crop(job):
                summary.not_selected += len(candidates) - tried
                break
