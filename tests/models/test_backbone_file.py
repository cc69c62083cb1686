"""The backbone file (simclr.models.backbone_file): tensors and metadata round trip, the header is read without
torch, and a damaged file is one line."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from simclr.errors import UserError
from simclr.models.backbone_file import (
    BACKBONE_FORMAT_VERSION,
    BackboneMetadata,
    read_backbone_metadata,
    read_backbone_tensors,
    write_backbone,
)
from simclr.version import __version__


def test_the_metadata_reader_imports_no_torch() -> None:
    code = "import sys, simclr.models.backbone_file; sys.exit(1 if 'torch' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_backbone_round_trip_with_metadata(tmp_path: Path) -> None:
    tensors = {"conv.weight": torch.randn(4, 3, 3, 3), "bn.running_mean": torch.zeros(4)}
    meta = BackboneMetadata(backbone="resnet18", stem="cifar", feature_dim=512, dataset="cifar10", image_size=32)
    path = tmp_path / "backbone.safetensors"
    write_backbone(path, tensors, meta)
    stamped = replace(meta, simclr_version=__version__, torch_version=torch.__version__, format_version=1)
    assert read_backbone_metadata(path) == stamped  # read without torch, from the header
    loaded = read_backbone_tensors(path)
    assert set(loaded) == set(tensors)
    torch.testing.assert_close(loaded["conv.weight"], tensors["conv.weight"], rtol=0, atol=0)
    assert [p.name for p in tmp_path.iterdir()] == ["backbone.safetensors"]


def test_a_written_file_says_which_simclr_and_torch_wrote_it_in_which_layout(tmp_path: Path) -> None:
    path = tmp_path / "backbone.safetensors"
    # what the caller says of the versions is overruled: the file is this writer's
    write_backbone(path, {"w": torch.ones(2)}, BackboneMetadata(backbone="resnet18", simclr_version="0.0.1"))
    with safe_open(str(path), framework="pt") as handle:  # as a reader without simclr sees it
        header = handle.metadata()
    assert (header["simclr_version"], header["torch_version"], header["format_version"]) == (
        __version__,
        torch.__version__,
        "1",
    )
    meta = read_backbone_metadata(path)
    assert (meta.simclr_version, meta.torch_version, meta.format_version) == (__version__, torch.__version__, 1)
    assert BACKBONE_FORMAT_VERSION == 1  # today's layout; raise it only with a change of layout


def test_a_file_written_before_the_versions_still_reads(tmp_path: Path) -> None:
    path = tmp_path / "backbone.safetensors"
    older = {"backbone": "resnet18", "stem": "cifar", "feature_dim": "512", "image_size": "32"}
    save_file({"conv.weight": torch.ones(4, 3, 3, 3)}, str(path), metadata=older)  # no simclr_version, ...
    meta = read_backbone_metadata(path)
    assert meta == BackboneMetadata(backbone="resnet18", stem="cifar", feature_dim=512, image_size=32)
    assert (meta.simclr_version, meta.torch_version, meta.format_version) == (None, None, None)
    assert set(read_backbone_tensors(path)) == {"conv.weight"}


def test_a_file_of_a_later_layout_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "backbone.safetensors"
    save_file({"w": torch.ones(2)}, str(path), metadata={"backbone": "resnet18", "format_version": "2"})
    with pytest.raises(UserError, match=r"backbone file format 2, newer than this simclr's 1; upgrade simclr") as info:
        read_backbone_metadata(path)
    assert "\n" not in str(info.value)


def test_metadata_may_be_partial_but_not_wrong(tmp_path: Path) -> None:
    assert BackboneMetadata.from_strings({"backbone": "resnet50"}) == BackboneMetadata(backbone="resnet50")
    with pytest.raises(UserError, match=r"image_size='abc' is not a whole number"):
        BackboneMetadata.from_strings({"image_size": "abc"}, tmp_path / "backbone.safetensors")


@pytest.mark.parametrize(
    "content",
    [b"", b"short", struct.pack("<Q", 1 << 40) + b"{}", struct.pack("<Q", 5) + b"nojso"],
)
def test_damaged_backbone_file_is_one_line_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "backbone.safetensors"
    path.write_bytes(content)
    with pytest.raises(UserError, match="damaged") as info:
        read_backbone_metadata(path)
    assert "\n" not in str(info.value)


def test_metadata_header_that_is_not_a_mapping(tmp_path: Path) -> None:
    header = json.dumps({"__metadata__": ["not", "a", "mapping"]}).encode()
    path = tmp_path / "backbone.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header)
    with pytest.raises(UserError, match="damaged"):
        read_backbone_metadata(path)
