"""Subset files: a labelled / unlabelled partition of a dataset's labelled training split, written once by
``simclr data split`` and read by ``pretrain --subset FILE:unlabelled`` and ``finetune --subset FILE``.

The rittik9/SimCLR notebooks pretrain on 42,000 CIFAR-10 images and fine-tune on 8,000 others; a file fixes
which are which, so the two commands (and every rerun) provably see disjoint images. The file is JSON::

    {"format": "simclr-subset/1", "dataset": "cifar10", "images": 50000, "seed": 0,
     "labelled_per_class": 800, "labelled": [...], "unlabelled": [...]}

Indices are positions in the dataset's labelled training split as simclr loads it (``train_labeled``:
the same order every time); a command checks that its split still has ``images`` images.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch

from simclr.atomic import write_text_atomic
from simclr.data.sampling import labelled_unlabelled
from simclr.errors import UserError

__all__ = ["SUBSET_FORMAT", "SUBSET_PARTS", "SubsetFile", "SubsetChoice", "make_subset_file", "parse_subset_choice"]

SUBSET_FORMAT = "simclr-subset/1"
SUBSET_PARTS = ("labelled", "unlabelled")


@dataclass(frozen=True)
class SubsetFile:
    """A disjoint labelled / unlabelled partition of ``images`` indices of ``dataset``'s labelled training split."""

    dataset: str
    images: int
    seed: int
    labelled_per_class: int
    labelled: torch.Tensor
    unlabelled: torch.Tensor

    def part(self, name: str) -> torch.Tensor:
        """The sorted indices of part ``name`` (``labelled`` or ``unlabelled``)."""
        if name not in SUBSET_PARTS:
            raise UserError(f"unknown subset part {name!r}; use one of {', '.join(SUBSET_PARTS)}")
        return self.labelled if name == "labelled" else self.unlabelled

    def write(self, path: Path) -> str:
        """Write the file (creating its folder) and return its SHA-256."""
        body = {
            "format": SUBSET_FORMAT,
            "dataset": self.dataset,
            "images": self.images,
            "seed": self.seed,
            "labelled_per_class": self.labelled_per_class,
            "labelled": self.labelled.tolist(),
            "unlabelled": self.unlabelled.tolist(),
        }
        path = Path(path).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, json.dumps(body, separators=(",", ":")) + "\n")
        return file_sha256(path)

    @classmethod
    def read(cls, path: Path) -> SubsetFile:
        """Read and check a subset file; anything malformed is a one-line UserError naming the file."""
        path = Path(path).expanduser()
        try:
            body = json.loads(path.read_text())
        except FileNotFoundError:
            raise UserError(f"subset file {path} does not exist; write one with 'simclr data split'") from None
        except (OSError, ValueError, RecursionError) as e:  # unreadable, not UTF-8, not JSON, nested too deep
            raise UserError(f"subset file {path} is not readable JSON ({type(e).__name__}); write it again") from None
        if not isinstance(body, dict) or body.get("format") != SUBSET_FORMAT:
            raise UserError(f'{path} is not a simclr subset file (no "format": "{SUBSET_FORMAT}")')
        try:
            images = _count(body["images"])
            parts = {name: _indices(body[name], images) for name in SUBSET_PARTS}
            subset = cls(
                dataset=str(body["dataset"]),
                images=images,
                seed=int(body["seed"]),
                labelled_per_class=_count(body["labelled_per_class"]),
                **parts,
            )
        except (KeyError, TypeError, ValueError) as e:
            raise UserError(f"subset file {path} is damaged ({type(e).__name__}: {e}); write it again") from None
        overlap = set(subset.labelled.tolist()) & set(subset.unlabelled.tolist())
        if overlap:
            raise UserError(f"subset file {path} lists {len(overlap)} image(s) as both labelled and unlabelled")
        return subset


def _count(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"expected a count, got {value!r}")
    return value


def _indices(value: object, images: int) -> torch.Tensor:
    if not isinstance(value, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in value):
        raise ValueError("expected a list of image indices")
    indices = torch.tensor(value, dtype=torch.int64)
    if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= images):
        raise ValueError(f"an index lies outside 0..{images - 1}")
    if torch.unique(indices).numel() != indices.numel():
        raise ValueError("an index is listed twice")
    return torch.sort(indices).values


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file's bytes (what a run records of the subset file it used)."""
    return hashlib.sha256(Path(path).expanduser().read_bytes()).hexdigest()


def make_subset_file(dataset: str, labels: torch.Tensor, labelled_per_class: int, seed: int) -> SubsetFile:
    """``labelled_per_class`` labelled images of every class of ``labels`` (drawn from ``seed``), the rest
    unlabelled."""
    labels = torch.as_tensor(labels).reshape(-1)
    if labels.numel() == 0 or int(labels.min()) < 0:
        raise UserError(f"{dataset}: a labelled / unlabelled split needs a training split whose images all have labels")
    labelled, unlabelled = labelled_unlabelled(labels, labelled_per_class, seed)
    return SubsetFile(dataset, labels.numel(), seed, labelled_per_class, labelled, unlabelled)


@dataclass(frozen=True)
class SubsetChoice:
    """``FILE:PART`` as given to a command: which file, and which of its parts the command uses."""

    path: Path
    part: str

    def load(self, dataset: str, images: int) -> torch.Tensor:
        """The part's indices, after checking the file was made for ``dataset`` and a split of ``images``
        images (the command's labelled training split)."""
        subset = SubsetFile.read(self.path)
        if subset.dataset != dataset:
            raise UserError(f"subset file {self.path} was made for {subset.dataset}, not {dataset}")
        if subset.images != images:
            raise UserError(
                f"subset file {self.path} indexes {subset.images} images but the labelled training split of "
                f"{dataset} has {images}; write it again with 'simclr data split' for this data"
            )
        return subset.part(self.part)

    def sha256(self) -> str:
        return file_sha256(self.path)


def parse_subset_choice(text: str, default_part: str | None = None) -> SubsetChoice:
    """``FILE:labelled`` or ``FILE:unlabelled`` (or ``FILE`` alone when ``default_part`` is given)."""
    path, sep, part = text.rpartition(":")
    if not sep or part not in SUBSET_PARTS:
        if default_part is None:
            raise UserError(f"--subset {text!r}: give FILE:unlabelled or FILE:labelled")
        path, part = text, default_part
    return SubsetChoice(Path(path), part)
