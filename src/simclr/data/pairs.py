"""Supervised pairs (``--positives class``, labelled mode of the sthalles/SimCLR fork): the positive of an
image is another image of the same class, drawn afresh every epoch."""

from __future__ import annotations

import torch

from simclr.errors import UserError

__all__ = ["SameClassPartners"]


class SameClassPartners:
    """Draws, for each image, a different image of its class.

    The draw is a pure function of the uniform numbers passed in (one per image), so the loader can tie
    them to positions of an epoch's permutation: resumed and multi-process runs then pair exactly as a
    single uninterrupted run does.
    """

    def __init__(self, labels: torch.Tensor, class_names: list[str] | None = None) -> None:
        labels = torch.as_tensor(labels, dtype=torch.int64).reshape(-1)
        if labels.numel() == 0 or bool((labels < 0).any()):
            raise UserError(
                "--positives class pairs images of the same class, but this training split has unlabelled images; "
                "use a labelled dataset (class sub-folders) or drop --positives class"
            )
        order = torch.argsort(labels, stable=True)  # images grouped by class
        counts = torch.bincount(labels)
        lonely = [int(c) for c in torch.nonzero(counts == 1).flatten()]
        if lonely:
            names = [class_names[c] if class_names and c < len(class_names) else str(c) for c in lonely[:5]]
            raise UserError(
                f"--positives class needs at least two images per class; {len(lonely)} class(es) have one "
                f"({', '.join(names)}); add images or drop --positives class"
            )
        self.labels = labels
        self.members = order
        self.first = torch.cumsum(counts, 0) - counts  # where each class starts in ``members``
        self.counts = counts
        self.rank_in_class = torch.empty_like(labels)
        self.rank_in_class[order] = torch.arange(labels.numel()) - self.first[labels[order]]

    def to(self, device: torch.device | str) -> SameClassPartners:
        """The same draws with the tables on ``device`` (where the store's batches are gathered)."""
        moved = object.__new__(SameClassPartners)
        for name in ("labels", "members", "first", "counts", "rank_in_class"):
            setattr(moved, name, getattr(self, name).to(device))
        return moved

    def draw(self, indices: torch.Tensor, uniform: torch.Tensor) -> torch.Tensor:
        """The partner of each image in ``indices``: uniformly one of the other images of its class, chosen by
        ``uniform`` (values in [0, 1), one per image)."""
        cls = self.labels[indices]
        others = self.counts[cls] - 1
        pick = torch.clamp((uniform * others).long(), max=others - 1)
        pick = pick + (pick >= self.rank_in_class[indices]).long()  # skip the image itself
        return self.members[self.first[cls] + pick]
