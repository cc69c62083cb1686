"""Label efficiency (InvCLR's study): the linear probe's test top-1 as the labelled part of train shrinks.

Features are computed once; each fraction keeps a stratified, seeded subset of the training labels
(:func:`simclr.evaluation.classifiers.training_labels.label_subset`) and fits the standard probe on it, so the
curve says how much each label is worth to these features.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from simclr.errors import UserError
from simclr.evaluation.classifiers.training_labels import label_subset
from simclr.evaluation.protocols.linear import linear_probe
from simclr.evaluation.recording import base_protocol
from simclr.evaluation.results import make_entry
from simclr.evaluation.session import EvalSession

log = logging.getLogger("simclr")

MIN_PER_CLASS = 2  # the probe chooses its L2 on a validation part: a class needs a fitting and a validation image


def run_label_efficiency(session: EvalSession, fractions: Sequence[float]) -> dict[str, Any]:
    """The probe's test metrics for each fraction of the training labels (stratified, seeded)."""
    session.splits.require_classes("the label-efficiency study")
    start = time.perf_counter()
    train, test = session.features("train"), session.features("test")
    store = session.splits["train"]
    rows = []
    for fraction in sorted(fractions):
        keep = label_subset(train.labels, fraction=fraction, seed=session.options.seed)
        labels = train.labels[keep]
        smallest = int(labels.bincount(minlength=store.num_classes).min())
        if smallest < MIN_PER_CLASS:
            raise UserError(
                f"--label-fractions {fraction:g} leaves {smallest} labelled image(s) in a class of the "
                f"{train.labels.numel()} training images; the probe needs {MIN_PER_CLASS} per class: raise the fraction"
            )
        probe = linear_probe(
            train.features[keep], labels, test.features, test.labels,
            num_classes=store.num_classes, class_names=store.class_names, seed=session.options.seed,
        )  # fmt: skip
        metrics = probe.metrics
        rows.append(
            {
                "label_fraction": fraction,
                "labels": int(keep.numel()),
                "top1": metrics["top1"],
                "top5": metrics.get("top5"),
                "macro_f1": metrics.get("macro_f1"),
                "chosen_l2": probe.chosen_l2,
            }
        )
        log.info("label efficiency: %g of the labels (%d): top-1 %.4f", fraction, keep.numel(), metrics["top1"])
    protocol = {
        **base_protocol(session),
        "read_out": "linear probe (L-BFGS, L2 chosen on a stratified validation part of the kept labels)",
        "subsets": "stratified by class, seeded; features computed once, without augmentation",
    }
    return make_entry("label_efficiency", protocol, {"by_fraction": rows}, time.perf_counter() - start)
