"""Fuzzing the readers of files and flags anyone may hand over (issue 26): random and mutated YAML configs,
safetensors headers, ``simclr-pack.json`` / ``index.json``, subset files and command lines, fed to the entry
points the commands parse them with. The contract: success, or a :class:`~simclr.errors.UserError` of one line
(exit code 2 from the CLI); never another exception, within a deadline and a memory bound per example.

A fixed number of examples per reader, derandomized (the same examples on every run), so the file stays within
seconds; a failure prints the example that broke the contract.
"""

from __future__ import annotations

import contextlib
import io
import json
import struct
import tracemalloc
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file

from simclr.cli import main
from simclr.config import PretrainConfig, build_config
from simclr.data.pack_format import INDEX_FILE, INFO_FILE, read_pack_info
from simclr.data.subset_file import SubsetChoice, SubsetFile
from simclr.errors import UserError
from simclr.models.backbone_file import BackboneMetadata, read_backbone_metadata, read_backbone_tensors
from simclr.settings import config_to_yaml, field_types, read_yaml

MEMORY_BOUND = 64 << 20  # bytes a reader may allocate for one example (every example here is a few KB)
FUZZ = settings(
    max_examples=60,
    derandomize=True,
    database=None,
    deadline=timedelta(seconds=3),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture(scope="module", autouse=True)
def modules_imported() -> None:
    """Import what the readers import lazily (the catalog, the backbones, the CLI's commands) before any memory
    is measured: an import is paid once per process, not by the example that happens to come first."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        main(["pretrain", "--dataset", "spirograph", "--print-config"])
        for command in EVALUATION_COMMANDS:
            main([command, "/nonexistent/run"])


def keeps_the_contract(read: Callable[[], object]) -> None:
    """``read()`` succeeds or raises a one-line UserError, allocating at most :data:`MEMORY_BOUND`."""
    tracemalloc.start()
    try:
        read()
    except UserError as exc:
        assert "\n" not in str(exc) and str(exc), repr(exc)
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak < MEMORY_BOUND, f"{peak} bytes"


# -- values of every kind a file may hold ----------------------------------------------------------------
HOSTILE_NUMBERS = st.sampled_from(
    [float("nan"), float("inf"), -float("inf"), 10**400, -(10**30), 2**63, 2**32, -1, 0, 1e308, 1e-320]
)
LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=24)
    | HOSTILE_NUMBERS
)
VALUES = st.recursive(
    LEAVES,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=10,
)


@st.composite
def mutated(draw: st.DrawFn, original: bytes) -> bytes:
    """``original`` with a few bytes flipped, inserted, deleted, or cut short."""
    data = bytearray(original)
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8) | st.sampled_from([b"[", b"{", b"&a ", b"*a", b"!!"]))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 8))]
        else:
            del data[at:]
    return bytes(data)


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


# -- YAML configs ----------------------------------------------------------------------------------------
CONFIG_KEYS = sorted(field_types(PretrainConfig))
VALID_CONFIG = config_to_yaml(PretrainConfig(dataset="cifar10")).encode()


@st.composite
def config_files(draw: st.DrawFn) -> bytes:
    choice = draw(st.integers(0, 3))
    if choice == 0:  # known keys, values of any kind
        keys = draw(st.lists(st.sampled_from(CONFIG_KEYS) | st.text(max_size=12), max_size=6))
        body = {key: draw(VALUES) for key in keys}
        return yaml.safe_dump(body, allow_unicode=True).encode()
    if choice == 1:  # a saved config with bytes changed
        return draw(mutated(VALID_CONFIG))
    if choice == 2:  # any text, any bytes
        return draw(st.text(max_size=200).map(str.encode) | st.binary(max_size=200))
    return draw(st.sampled_from([nested(5_000), b"a: " + b"9" * 400, b"lr: .nan", b"seed: -1", b"x: &a [*a]"]))


@FUZZ
@given(content=config_files())
def test_configs(content: bytes, tmp_path_factory: pytest.TempPathFactory) -> None:
    path = tmp_path_factory.mktemp("config") / "recipe.yaml"
    path.write_bytes(content)
    keeps_the_contract(lambda: build_config(read_yaml(path), {}))


# -- safetensors headers ---------------------------------------------------------------------------------
def _valid_backbone() -> bytes:
    buffer = io.BytesIO()
    meta = BackboneMetadata(backbone="resnet18", stem="cifar", feature_dim=4, dataset="cifar10", image_size=32)
    with contextlib.ExitStack() as stack:
        folder = Path(stack.enter_context(__import__("tempfile").TemporaryDirectory()))
        save_file({"w": torch.ones(2, 2)}, str(folder / "b.safetensors"), metadata=meta.to_strings())
        buffer.write((folder / "b.safetensors").read_bytes())
    return buffer.getvalue()


VALID_BACKBONE = _valid_backbone()
METADATA_KEYS = ["backbone", "stem", "feature_dim", "dataset", "image_size", "global_step", "epoch", "mean", "std"]


@st.composite
def safetensors_files(draw: st.DrawFn) -> bytes:
    choice = draw(st.integers(0, 3))
    if choice == 0:  # a header of any JSON, and a length prefix that may lie
        header = json.dumps(
            {"__metadata__": draw(st.dictionaries(st.sampled_from(METADATA_KEYS) | st.text(max_size=6), VALUES))}
            if draw(st.booleans())
            else draw(VALUES)
        ).encode()
        size = draw(st.sampled_from([len(header), len(header) + 1, 0, 2**64 - 1, 2**40]))
        return struct.pack("<Q", size) + header + draw(st.binary(max_size=16))
    if choice == 1:
        return draw(mutated(VALID_BACKBONE))
    if choice == 2:
        return draw(st.binary(max_size=64))
    deep = nested(draw(st.sampled_from([1_000, 200_000])))
    return struct.pack("<Q", len(deep)) + deep


@FUZZ
@given(content=safetensors_files())
def test_safetensors_headers(content: bytes, tmp_path_factory: pytest.TempPathFactory) -> None:
    path = tmp_path_factory.mktemp("backbone") / "backbone.safetensors"
    path.write_bytes(content)
    keeps_the_contract(lambda: read_backbone_metadata(path))
    keeps_the_contract(lambda: read_backbone_tensors(path))


# -- simclr-pack.json and index.json ---------------------------------------------------------------------
VALID_INFO = json.dumps(
    {
        "source": "imgs/train",
        "class_names": ["a", "b"],
        "images": 16,
        "skipped": 0,
        "bytes": 13632,
        "max_side": 512,
        "quality": 95,
        "median_shorter_side": 16,
        "seed": 0,
        "format": "simclr-pack/1",
    }
).encode()
VALID_INDEX = json.dumps(
    {
        "chunks": [{"chunk_bytes": 14878, "chunk_size": 16, "dim": None, "filename": "chunk-0-0.bin"}],
        "config": {
            "chunk_bytes": 64000000,
            "chunk_size": None,
            "compression": None,
            "data_format": ["bytes", "int", "bytes"],
            "encryption": None,
            "item_loader": "PyTreeLoader",
        },
        "updated_at": "1796662345.69529",
    }
).encode()


def json_files(valid: bytes) -> st.SearchStrategy[bytes]:
    return (
        mutated(valid)
        | VALUES.map(lambda value: json.dumps(value).encode())
        | st.binary(max_size=64)
        | st.sampled_from([nested(200_000), b'{"images": ' + b"9" * 5000 + b"}"])
    )


@FUZZ
@given(info=json_files(VALID_INFO), index=json_files(VALID_INDEX))
def test_pack_descriptions(info: bytes, index: bytes, tmp_path_factory: pytest.TempPathFactory) -> None:
    split = tmp_path_factory.mktemp("pack") / "train"
    split.mkdir()
    (split / INFO_FILE).write_bytes(info)
    (split / INDEX_FILE).write_bytes(index)
    keeps_the_contract(lambda: read_pack_info(split))


# -- subset files ----------------------------------------------------------------------------------------
VALID_SUBSET = json.dumps(
    {
        "format": "simclr-subset/1",
        "dataset": "cifar10",
        "images": 10,
        "seed": 0,
        "labelled_per_class": 1,
        "labelled": [0, 5],
        "unlabelled": [1, 2, 3, 4, 6, 7, 8, 9],
    }
).encode()


@FUZZ
@given(content=json_files(VALID_SUBSET), part=st.sampled_from(["labelled", "unlabelled"]))
def test_subset_files(content: bytes, part: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    path = tmp_path_factory.mktemp("subset") / "split.json"
    path.write_bytes(content)
    keeps_the_contract(lambda: SubsetChoice(path, part).load("cifar10", 10))


def test_the_valid_examples_are_valid(tmp_path: Path) -> None:
    """The files the mutations start from are read as they are: a mutation tests the reader, not a typo here."""
    (tmp_path / "b.safetensors").write_bytes(VALID_BACKBONE)
    assert read_backbone_metadata(tmp_path / "b.safetensors").image_size == 32
    (tmp_path / INFO_FILE).write_bytes(VALID_INFO)
    (tmp_path / INDEX_FILE).write_bytes(VALID_INDEX)
    assert read_pack_info(tmp_path).images == 16
    (tmp_path / "s.json").write_bytes(VALID_SUBSET)
    assert SubsetFile.read(tmp_path / "s.json").labelled.tolist() == [0, 5]
    (tmp_path / "c.yaml").write_bytes(VALID_CONFIG)
    assert build_config(read_yaml(tmp_path / "c.yaml"), {}).dataset == "cifar10"


# -- command lines ---------------------------------------------------------------------------------------
PRETRAIN_FLAGS = [f"--{name.replace('_', '-')}" for name in CONFIG_KEYS if name not in ("dataset_class",)]
ARGUMENT_TEXT = (
    st.sampled_from(
        ["nan", "inf", "-inf", "-1", "0", "1", "1e400", "9" * 400, "", "x", "a" * 300, "/", "~", "s3://b/x"]
    )
    | st.text(max_size=12)
    | st.integers(-(2**40), 2**40).map(str)
    | st.floats().map(str)
)
EVALUATION_COMMANDS = ["evaluate", "knn", "linear-eval", "finetune", "supervised", "regress", "export", "embed"]


@st.composite
def command_lines(draw: st.DrawFn, missing_run: str) -> list[str]:
    tokens: list[str] = []
    for _ in range(draw(st.integers(0, 5))):
        tokens += [draw(st.sampled_from(PRETRAIN_FLAGS) | st.text(max_size=8)), draw(ARGUMENT_TEXT)]
    tokens = [token for token in tokens if token not in ("-h", "--help", "--version") and not token.startswith("-h")]
    if draw(st.booleans()):  # pretrain stops after printing the config: nothing is trained
        return ["pretrain", "--dataset", "spirograph", *tokens, "--print-config"]
    return [draw(st.sampled_from(EVALUATION_COMMANDS)), missing_run, *tokens]  # stops at the missing run


@FUZZ
@given(data=st.data())
def test_command_lines(data: st.DataObject, tmp_path_factory: pytest.TempPathFactory) -> None:
    folder = tmp_path_factory.mktemp("cli")
    argv = data.draw(command_lines(str(folder / "no-run")))
    err = io.StringIO()

    def run() -> Any:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
            code = main(argv)
        assert code in (0, 2), (argv, code)
        if code == 2:
            assert err.getvalue().count("\n") == 1 and err.getvalue().startswith("simclr: error: "), err.getvalue()

    keeps_the_contract(run)
    assert not any(path.name != "no-run" for path in folder.iterdir()), "a refused command must write nothing"
