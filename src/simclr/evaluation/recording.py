"""What an evaluation writes about itself beside every number: the protocol fields every result carries, the
dataset and backbone blocks of ``metrics.json``, and recording a result there (and in the run's tracker).

The layout of ``metrics.json`` and its atomic writer are in :mod:`simclr.evaluation.results`; this module fills
them in from an :class:`~simclr.evaluation.session.EvalSession`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from simclr.evaluation.results import record_result
from simclr.evaluation.session import EvalSession
from simclr.evaluation.splits import HELD_OUT_TEST_FRACTION
from simclr.tracking import report_evaluation
from simclr.views.spirograph import GENERATIVE_NAMES


def base_protocol(session: EvalSession) -> dict[str, Any]:
    """Protocol fields every result carries: which weights, which seed, how many images of which splits."""
    backbone = session.backbone.describe()
    options = session.options
    return {
        "backbone_sha256": backbone["sha256"],
        "weights": backbone["weights"],
        "backbone_epoch": backbone["epoch"],
        "backbone_step": backbone["global_step"],
        "seed": options.seed,
        "n_train": len(session.splits["train"]),
        "n_test": len(session.splits["test"]),
        "test_split": "held-out part of train" if session.splits.test_is_held_out else "official test split",
        "limit_train_images": options.limit_train_images,
        "limit_test_images": options.limit_test_images,
    }


def dataset_block(session: EvalSession) -> dict[str, Any]:
    """The ``dataset`` block of ``metrics.json``: name, image size, classes (or Spirograph's targets), and
    where the classifiers were fitted and tested when that is not the usual train and test split."""
    info = session.info
    train = session.splits["train"]
    block: dict[str, Any] = {"name": info.name, "image_size": info.image_size, "num_classes": info.num_classes}
    if train.factors is not None:
        block["targets"] = list(GENERATIVE_NAMES)
    else:
        block["class_names"] = list(train.class_names)
    if session.options.train_split == "valid":
        block["train_split"] = "the folder's valid/ (classifiers fitted there, as the sthalles/SimCLR fork's probe)"
    if session.splits.test_is_held_out:
        block["test_split"] = (
            f"held out: {round(100 * HELD_OUT_TEST_FRACTION)}% of train (seed {session.options.seed + 1})"
        )
    return block


def record(session: EvalSession, key: str, entry: dict[str, Any]) -> Path:
    """Add a result to the evaluation's metrics.json, and its numbers to the run's tracker (if it has one)."""
    path = record_result(
        session.ref.eval,
        key,
        entry,
        run_dir=session.ref.run.path,
        dataset=dataset_block(session),
        backbone=session.backbone.describe(),
    )
    if session.ref.writes_to_run:
        report_evaluation(session.ref.run, {key: entry})
    return path
