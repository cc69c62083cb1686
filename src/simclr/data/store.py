"""In-memory image storage: a whole split decoded once into one uint8 tensor."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import torch

__all__ = ["ImageStore", "concat_stores", "printable_name", "report_skipped"]


@dataclass
class ImageStore:
    """A whole split decoded once into memory: batches are drawn by index, never by per-image Python calls."""

    images: torch.Tensor  # (N, 3, H, W) uint8, contiguous
    labels: torch.Tensor  # (N,) int64, -1 where unlabeled
    class_names: list[str]  # [] when unlabeled
    file_names: list[str] | None = None  # relative paths for folder data
    factors: torch.Tensor | None = None  # (N, k) float32 regression targets
    # (path, reason) of undecodable files
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.images.dim() != 4 or self.images.shape[1] != 3:
            raise ValueError(f"images must be (N, 3, H, W), got {tuple(self.images.shape)}")
        if self.images.dtype != torch.uint8:
            raise ValueError(f"images must be uint8, got {self.images.dtype}")
        if not self.images.is_contiguous():
            self.images = self.images.contiguous()
        self.labels = torch.as_tensor(self.labels, dtype=torch.int64).reshape(-1)
        n = self.images.shape[0]
        if self.labels.shape[0] != n:
            raise ValueError(f"{n} images but {self.labels.shape[0]} labels")
        if self.file_names is not None and len(self.file_names) != n:
            raise ValueError(f"{n} images but {len(self.file_names)} file names")
        if self.factors is not None:
            self.factors = torch.as_tensor(self.factors, dtype=torch.float32)
            if self.factors.dim() != 2 or self.factors.shape[0] != n:
                raise ValueError(f"factors must be ({n}, k), got {tuple(self.factors.shape)}")

    @property
    def has_labels(self) -> bool:
        """True when at least one image has a label (>= 0)."""
        return bool(self.labels.numel()) and bool((self.labels >= 0).any())

    @property
    def num_classes(self) -> int:
        """Number of class names (0 when unlabeled)."""
        return len(self.class_names)

    @property
    def image_size(self) -> int:
        """Side of the (square) images; the height when they are not square."""
        return int(self.images.shape[2])

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def decoded_bytes(self) -> int:
        return self.images.numel()

    def batches(self, batch_size: int) -> Iterator[torch.Tensor]:
        """The images in order, ``batch_size`` at a time (as a streamed store hands them out)."""
        for start in range(0, len(self), batch_size):
            yield self.images[start : start + batch_size]

    def load(self) -> ImageStore:
        """Itself: it is already in memory (as a streamed store's ``load`` gives)."""
        return self

    def to(self, device: torch.device) -> ImageStore:
        """The same store with its tensors (images, labels, factors) on ``device``."""
        return ImageStore(
            images=self.images.to(device),
            labels=self.labels.to(device),
            class_names=list(self.class_names),
            file_names=self.file_names,
            factors=None if self.factors is None else self.factors.to(device),
            skipped=list(self.skipped),
        )

    @property
    def nbytes(self) -> int:
        """Bytes of the store's tensors (images, labels, factors)."""
        tensors = [self.images, self.labels] + ([self.factors] if self.factors is not None else [])
        return sum(t.numel() * t.element_size() for t in tensors)

    def subset(self, indices: torch.Tensor) -> ImageStore:
        """A new store holding the given rows (in the given order); ``skipped`` is kept."""
        idx = torch.as_tensor(indices, dtype=torch.int64).reshape(-1)
        return ImageStore(
            images=self.images.index_select(0, idx),
            labels=self.labels.index_select(0, idx),
            class_names=list(self.class_names),
            file_names=None if self.file_names is None else [self.file_names[i] for i in idx.tolist()],
            factors=None if self.factors is None else self.factors.index_select(0, idx),
            skipped=list(self.skipped),
        )

    def __repr__(self) -> str:
        n, _, h, w = self.images.shape
        labelled = f"{self.num_classes} classes" if self.has_labels else "unlabeled"
        extra = f", factors={self.factors.shape[1]}" if self.factors is not None else ""
        return f"ImageStore(n={n}, size={h}x{w}, {labelled}{extra}, skipped={len(self.skipped)})"


def concat_stores(stores: Sequence[ImageStore]) -> ImageStore:
    """Concatenate stores of the same image size; class names are taken from the first with any."""
    if not stores:
        raise ValueError("concat_stores needs at least one store")
    shapes = {tuple(s.images.shape[1:]) for s in stores}
    if len(shapes) != 1:
        raise ValueError(f"cannot concatenate stores with image shapes {sorted(shapes)}")
    class_names = next((list(s.class_names) for s in stores if s.class_names), [])
    file_names: list[str] | None = None
    if all(s.file_names is not None for s in stores):
        file_names = [f for s in stores for f in (s.file_names or [])]
    factors = None
    if all(s.factors is not None for s in stores):
        factors = torch.cat([s.factors for s in stores if s.factors is not None])
    return ImageStore(
        images=torch.cat([s.images for s in stores]),
        labels=torch.cat([s.labels for s in stores]),
        class_names=class_names,
        file_names=file_names,
        factors=factors,
        skipped=[x for s in stores for x in s.skipped],
    )


def printable_name(name: str) -> str:
    r"""``name`` with every unprintable character escaped (newline -> ``\n``, ESC -> ``\x1b``, undecodable
    bytes -> ``\udcff``), for logs and messages: a hostile file name can neither split one record into
    several lines nor send terminal control codes. Printable text, non-ASCII letters included, is kept.

    >>> printable_name("bad\nname.jpg"), printable_name("café.png")
    ('bad\\nname.jpg', 'café.png')
    """
    if name.isprintable():
        return name
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in name)


def report_skipped(store: ImageStore | Sequence[tuple[str, str]], split: str) -> None:
    """Warn on the ``simclr`` logger about every file of ``split`` that was skipped (undecodable, unreadable,
    not a regular file, a link leading outside the data folder), one line each, so skipped user data is always
    counted and named, never silently dropped. ``store`` may also be the bare ``(name, reason)`` list."""
    skipped = store.skipped if isinstance(store, ImageStore) else store
    if skipped:
        log = logging.getLogger("simclr")
        log.warning("%s: skipped %d file(s):", printable_name(split), len(skipped))
        for path, reason in skipped:
            log.warning("  skipped %s: %s", printable_name(path), printable_name(reason))
