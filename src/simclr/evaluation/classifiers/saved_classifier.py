"""Classifiers that last: what ``linear-eval``, ``finetune`` and ``supervised`` trained, saved for ``simclr predict``.

One safetensors file per protocol (:meth:`simclr.rundir.EvalDir.classifier`): the head's tensors under
``head.``, and either the backbone's tensors under ``backbone.`` (fine-tuned or supervised: the weights
changed) or a reference to the run's backbone file with its SHA-256 (linear probes: the backbone is the
run's, frozen, and is not copied). The metadata (strings, :class:`ClassifierMetadata`) says how to rebuild
the network and how to feed it: class names, normalisation, the size images are decoded to and the size the
network sees. safetensors holds no code, so a hostile file can at worst fail to load, with a one-line error.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from torch import nn

from simclr.errors import UserError
from simclr.evaluation.classifiers.classifier_heads import Classifier, HeadSpec, StandardizedLinear
from simclr.evaluation.loading import MAX_IMAGE_SIZE, file_sha256, load_weights
from simclr.evaluation.session import EvalSession
from simclr.models.backbone_file import read_backbone_tensors, write_safetensors
from simclr.models.backbones import STEMS, build_backbone, is_torchvision_backbone
from simclr.rundir import CLASSIFIER_FILE

__all__ = ["FORMAT", "ClassifierMetadata", "load_classifier", "save_classifier", "save_trained_classifier"]

log = logging.getLogger("simclr")

FORMAT = "simclr-classifier/1"
HEAD_PREFIX = "head."
BACKBONE_PREFIX = "backbone."


@dataclass(frozen=True)
class ClassifierMetadata:
    """How to rebuild and feed a saved classifier.

    ``decode_size`` is the side images are decoded to (the run's image size), ``image_size`` the side the
    network sees (they differ when the supervised baseline upsamples to 224 px for ImageNet weights).
    ``head`` is :class:`~simclr.evaluation.classifiers.classifier_heads.HeadSpec`'s fields, or
    ``{"kind": "standardized_linear"}`` for the L-BFGS probe. ``backbone_sha256`` names the run's backbone file:
    the one referenced by ``backbone_file`` (relative to the classifier's folder) when its weights are not
    included, else the one the classifier was compared with or fine-tuned from.
    """

    protocol: str
    class_names: tuple[str, ...]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    image_size: int
    decode_size: int
    backbone: str
    stem: str | None  # None for a timm model or a module of one's own (their stems are their own)
    feature_dim: int
    head: dict[str, Any]
    backbone_sha256: str
    backbone_file: str | None = None

    def to_strings(self) -> dict[str, str]:
        values = {
            "format": FORMAT,
            "protocol": self.protocol,
            "class_names": json.dumps(list(self.class_names)),
            "mean": json.dumps(list(self.mean)),
            "std": json.dumps(list(self.std)),
            "image_size": str(self.image_size),
            "decode_size": str(self.decode_size),
            "backbone": self.backbone,
            "feature_dim": str(self.feature_dim),
            "head": json.dumps(self.head),
            "backbone_sha256": self.backbone_sha256,
        }
        if self.stem is not None:
            values["stem"] = self.stem
        if self.backbone_file is not None:
            values["backbone_file"] = self.backbone_file
        return values

    @classmethod
    def from_strings(cls, values: dict[str, str], where: Path) -> ClassifierMetadata:
        """Parse and check every field; anything malformed is a one-line UserError naming ``where``."""

        def fail(problem: str) -> UserError:
            return UserError(f"{where}: {problem}; the file is damaged or not a simclr classifier")

        if values.get("format") != FORMAT:
            raise fail(f"format is {str(values.get('format'))[:40]!r}, expected {FORMAT!r}")

        def field(name: str) -> str:
            if name not in values:
                raise fail(f"metadata has no {name!r}")
            return values[name]

        def parsed(name: str) -> Any:
            try:
                return json.loads(field(name))
            except ValueError:
                raise fail(f"metadata {name} is not JSON") from None

        def size(name: str, limit: int) -> int:
            text = field(name)
            if not text.isdigit() or not 1 <= int(text) <= limit:
                raise fail(f"metadata {name}={text[:40]!r} is not a whole number in 1..{limit}")
            return int(text)

        names, mean, std, head = parsed("class_names"), parsed("mean"), parsed("std"), parsed("head")
        if not isinstance(names, list) or len(names) < 2 or not all(isinstance(n, str) for n in names):
            raise fail("class_names is not a list of at least 2 names")
        for name, value in (("mean", mean), ("std", std)):
            if not isinstance(value, list) or len(value) != 3 or not all(isinstance(v, int | float) for v in value):
                raise fail(f"{name} is not 3 numbers")
        if not isinstance(head, dict) or not isinstance(head.get("kind"), str):
            raise fail("head is not a description of a head")
        stem = values.get("stem")
        if stem is None and is_torchvision_backbone(field("backbone")):
            raise fail("metadata has no 'stem'")
        if stem is not None and (stem not in STEMS or stem == "auto"):
            raise fail(f"unknown stem {stem[:40]!r}")
        return cls(
            protocol=field("protocol"),
            class_names=tuple(names),
            mean=tuple(float(v) for v in mean),  # type: ignore[arg-type]
            std=tuple(float(v) for v in std),  # type: ignore[arg-type]
            image_size=size("image_size", MAX_IMAGE_SIZE),
            decode_size=size("decode_size", MAX_IMAGE_SIZE),
            backbone=field("backbone"),
            stem=stem,
            feature_dim=size("feature_dim", 1 << 20),
            head=head,
            backbone_sha256=field("backbone_sha256"),
            backbone_file=values.get("backbone_file"),
        )


def _build_head(spec: dict[str, Any], in_dim: int, num_classes: int, where: Path) -> nn.Module:
    kind = spec.get("kind")
    if kind == "standardized_linear":
        return StandardizedLinear(in_dim, num_classes)
    known = set(HeadSpec.__dataclass_fields__)
    if not set(spec) <= known:
        raise UserError(f"{where}: unknown head settings {sorted(set(spec) - known)}; the file is damaged")
    return HeadSpec(**spec).build(in_dim, num_classes)


def save_classifier(
    path: Path, model: Classifier, metadata: ClassifierMetadata, *, backbone_path: Path | None = None
) -> Path:
    """Write ``model`` atomically. With ``backbone_path`` (a frozen run backbone, unchanged) only the head is
    written and the metadata refers to that file (relative path, SHA-256); otherwise the backbone's tensors
    are included."""
    tensors = {HEAD_PREFIX + key: value for key, value in model.head.state_dict().items()}
    if backbone_path is None:
        tensors |= {BACKBONE_PREFIX + key: value for key, value in model.backbone.state_dict().items()}
    else:
        # relative, so a run directory moved or copied whole still finds its backbone
        reference = os.path.relpath(backbone_path.resolve(), path.parent.resolve())
        metadata = replace(metadata, backbone_file=reference)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_safetensors(path, tensors, metadata.to_strings())
    return path


def save_trained_classifier(
    session: EvalSession,
    protocol: str,
    model: Classifier,
    head: dict[str, Any],
    *,
    image_size: int,
    mean: tuple[float, float, float],
    std: tuple[float, float, float],
    feature_dim: int,
    architecture: tuple[str, str | None] | None = None,
) -> Path:
    """Keep what ``protocol`` trained in ``session`` as ``EVAL_DIR/<protocol>/classifier...`` for ``simclr
    predict``. ``architecture`` (name, stem) is given for a backbone that is not the run's (the supervised
    baseline); the backbone's weights are then included, as they are for any backbone that trained or was
    randomly initialised. The run's own backbone, frozen, is referenced by path and SHA-256 instead of copied."""
    name, stem = architecture or session.backbone.architecture(session.config)
    referenced = architecture is None and model.freeze_backbone and not session.options.random_weights
    metadata = ClassifierMetadata(
        protocol=protocol,
        class_names=tuple(session.splits["train"].class_names),
        mean=mean,
        std=std,
        image_size=image_size,
        decode_size=session.image_size,
        backbone=name,
        stem=stem,
        feature_dim=feature_dim,
        head=head,
        backbone_sha256=session.backbone.sha256,
    )
    backbone_path = session.ref.backbone_path if referenced else None
    path = save_classifier(session.ref.eval.classifier(protocol), model, metadata, backbone_path=backbone_path)
    log.info("%s: classifier saved to %s", protocol, path)
    return path


def load_classifier(path: Path | str) -> tuple[Classifier, ClassifierMetadata]:
    """The saved classifier in eval mode on the CPU (backbone frozen) and its metadata; a missing, damaged or
    foreign file, or a referenced backbone that is gone or changed, is a one-line UserError."""
    from safetensors import SafetensorError, safe_open

    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"{path} does not exist; pass a {CLASSIFIER_FILE} file or a run directory")
    try:
        with safe_open(str(path), framework="pt") as handle:  # type: ignore[no-untyped-call]
            raw = handle.metadata() or {}
    except (SafetensorError, OSError) as exc:
        raise UserError(f"cannot read {path}: {exc}; the file is damaged or not a safetensors file") from None
    meta = ClassifierMetadata.from_strings(dict(raw), path)
    tensors = read_backbone_tensors(path)
    try:
        backbone, feature_dim = build_backbone(meta.backbone, meta.stem, meta.image_size)  # type: ignore[arg-type]
    except (KeyError, ValueError):
        raise UserError(f"{path}: unknown backbone {meta.backbone[:40]!r}; the file is damaged") from None
    if feature_dim != meta.feature_dim:
        raise UserError(f"{path}: feature_dim {meta.feature_dim} does not match a {meta.backbone} ({feature_dim})")
    what = f"a {meta.backbone} with the {meta.stem} stem" if meta.stem else f"a {meta.backbone}"
    if meta.backbone_file is None:
        weights = {k[len(BACKBONE_PREFIX) :]: v for k, v in tensors.items() if k.startswith(BACKBONE_PREFIX)}
        load_weights(backbone, weights, path, what)
    else:
        source = path.parent / meta.backbone_file
        if not source.is_file():
            raise UserError(
                f"{path} uses the backbone {source}, which does not exist; keep the classifier inside its run "
                "directory or evaluate again"
            )
        if file_sha256(source) != meta.backbone_sha256:
            raise UserError(
                f"{source} has changed since {path} was trained on it (SHA-256 differs); run the evaluation again"
            )
        load_weights(backbone, read_backbone_tensors(source), source, what)
    try:
        head = _build_head(meta.head, feature_dim, len(meta.class_names), path)
    except (TypeError, ValueError) as exc:
        raise UserError(f"{path}: the head's settings do not build a head ({exc}); the file is damaged") from None
    head_weights = {k[len(HEAD_PREFIX) :]: v for k, v in tensors.items() if k.startswith(HEAD_PREFIX)}
    load_weights(head, head_weights, path, f"a {meta.head['kind']} head with {len(meta.class_names)} classes")
    model = Classifier(backbone, head, freeze_backbone=True)
    model.head.requires_grad_(False)
    return model.eval(), meta
