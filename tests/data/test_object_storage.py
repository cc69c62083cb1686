"""Packed datasets in object storage: a pack uploaded to an S3-compatible server that the tests start on
127.0.0.1 (moto's standalone server) is streamed by pretraining, resumed, and evaluated; what goes wrong
(no credentials, no such bucket or prefix, an unreachable endpoint, a missing package) is one line and exit 2;
the chunk cache and Azure's account are configured from the environment; the extras are declared."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import types
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from simclr.cli import main
from simclr.data.object_storage import (
    STORES,
    chunk_cache_dir,
    chunk_cache_size,
    follow_moved_chunk_cache,
    stream_options,
)
from simclr.data.streaming import PackedSplit
from simclr.errors import UserError

from ..conftest import noise_pngs

REPO = Path(__file__).resolve().parents[2]
BUCKET = "simclr-test"
TRAIN_IMAGES, TEST_IMAGES = 48, 16
# the pack's own 16 px (the default would upsample to 32 px: four times the compute for nothing tested here)
SHORT = ["--batch-size", "8", "--precision", "32", "--workers", "1", "--optimizer", "sgd", "--image-size", "16"]
SHORT += ["--knn-every-epochs", "0", "--quiet"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """moto's standalone S3 server, started on a free port of 127.0.0.1 and stopped after the module."""
    pytest.importorskip("moto.server", reason="moto[server] (in the dev extra) is the local S3-compatible store")
    port = _free_port()
    log = tmp_path_factory.mktemp("moto") / "server.log"
    with open(log, "w") as out:
        command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
        server = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture(scope="module")
def uploaded(s3_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """A tiny generated image folder packed with ``simclr data pack`` into small chunks (so that litdata
    fetches several, concurrently), and the OUT folder uploaded to ``s3://simclr-test/pack``: its URL and the
    local pack."""
    import boto3

    root = tmp_path_factory.mktemp("s3-pack")
    noise_pngs(root / "folder" / "train", TRAIN_IMAGES, classes=("class0", "class1"), size=16)
    noise_pngs(root / "folder" / "test", TEST_IMAGES, classes=("class0", "class1"), size=16, seed=1)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("simclr.data.packed.CHUNK_BYTES", "4KB")
        assert main(["data", "pack", str(root / "folder"), str(root / "packed"), "--workers", "1"]) == 0
    assert len(json.loads((root / "packed" / "train" / "index.json").read_text())["chunks"]) > 4
    client = boto3.client(
        "s3", endpoint_url=s3_endpoint, region_name="us-east-1", aws_access_key_id="k", aws_secret_access_key="s"
    )
    client.create_bucket(Bucket=BUCKET)
    for path in sorted((root / "packed").rglob("*")):
        if path.is_file():
            client.upload_file(str(path), BUCKET, f"pack/{path.relative_to(root / 'packed').as_posix()}")
    return f"s3://{BUCKET}/pack", root / "packed"


@pytest.fixture
def s3_env(s3_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Credentials and the endpoint as a user of an S3-compatible store gives them (the environment), and
    simclr's caches in the test's folder; nothing from the machine's own AWS configuration. Returns the chunk
    cache."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3", "LITDATA_CACHE_DIR", "MAX_CACHE_SIZE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance-metadata lookups off EC2
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("SIMCLR_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("SIMCLR_CHUNK_CACHE", str(tmp_path / "chunks"))
    monkeypatch.delenv("SIMCLR_CHUNK_CACHE_SIZE", raising=False)
    return tmp_path / "chunks"


def _steps(run: Path) -> list[int]:
    rows = (run / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    return [int(row.split(",")[0]) for row in rows[1:] if row.split(",")[header.index("train_loss")]]


@pytest.mark.slow
def test_pretraining_streams_a_pack_from_s3_resumes_elsewhere_and_evaluates(
    uploaded: tuple[str, Path], s3_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    url, _ = uploaded
    run = tmp_path / "run"
    assert (
        main(["pretrain", "--dataset", "packed", "--data-dir", url, "--out", str(run), "--max-steps", "3", *SHORT]) == 0
    )
    log = (run / "train.log").read_text()
    assert f"streaming the training split from {url}/train" in log
    assert f"dataset packed: {TRAIN_IMAGES} training images of 16px" in log
    assert len(list(s3_env.rglob("chunk-*.bin"))) > 4  # cached where SIMCLR_CHUNK_CACHE says
    assert _steps(run) == [0, 1, 2]

    # the requeued job runs where the chunks are cached elsewhere: the stream resumes from the same position
    monkeypatch.setenv("SIMCLR_CHUNK_CACHE", str(tmp_path / "moved"))
    assert main(["pretrain", "--resume", str(run), "--max-steps", "5", "--quiet"]) == 0
    assert _steps(run) == [0, 1, 2, 3, 4]
    assert "the chunk cache moved from" in (run / "train.log").read_text()
    assert list((tmp_path / "moved").rglob("chunk-*.bin"))

    # evaluation reads the same URL the same way
    assert main(["knn", str(run), "--data-dir", url, "--workers", "1", "--memory-budget", "1KB"]) == 0
    knn = json.loads((run / "eval" / "metrics.json").read_text())["results"]["knn"]
    assert (knn["protocol"]["n_train"], knn["protocol"]["n_test"], knn["protocol"]["backbone_step"]) == (48, 16, 5)
    code = main(["knn", str(run), "--data-dir", "s3://no-such-bucket/pack", "--workers", "0"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.splitlines() == [
        "simclr: error: s3://no-such-bucket/pack: S3 has no bucket (or container) named 'no-such-bucket'; check the URL"
    ]


def test_a_split_read_from_s3_holds_the_local_packs_images_and_labels(uploaded: tuple[str, Path], s3_env: Path) -> None:
    url, local = uploaded
    remote, packed = PackedSplit(f"{url}/train"), PackedSplit(local / "train")
    assert remote.info == packed.info and torch.equal(remote.labels, packed.labels)
    assert remote.sidecars.is_relative_to(s3_env.parent / "cache" / "remote")
    a, b = remote.load_first(TRAIN_IMAGES, 16, workers=1), packed.load_first(TRAIN_IMAGES, 16)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)


def test_train_ae_holds_a_pack_read_from_s3(uploaded: tuple[str, Path], s3_env: Path, tmp_path: Path) -> None:
    """The autoencoder holds its images in memory: from a URL it decodes the remote pack's training split (it
    once reported the URL missing, as if no --data-dir had been given)."""
    url, _ = uploaded
    out = tmp_path / "ae"
    argv = ["train-ae", "--dataset", "packed", "--data-dir", url, "--out", str(out), "--epochs", "1"]
    assert main([*argv, "--latent-dim", "8", "--batch-size", "16", "--quiet"]) == 0
    log = (out / "train.log").read_text()
    held = re.search(r"dataset packed: (\d+) training \+ (\d+) validation \+ \d+ test images of 32px", log)
    assert held and int(held[1]) + int(held[2]) == TRAIN_IMAGES, log  # the whole remote training split


def _one_line_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2 and "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


def test_missing_credentials_are_named_with_where_they_come_from(
    uploaded: tuple[str, Path], s3_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    run = tmp_path / "run"
    err = _one_line_error(["pretrain", "--dataset", "packed", "--data-dir", uploaded[0], "--out", str(run)], capsys)
    assert f"no credentials for {uploaded[0]}/train/index.json" in err and "AWS_ACCESS_KEY_ID" in err
    assert not run.exists()


def test_a_missing_bucket_and_an_empty_prefix_are_told_apart(
    uploaded: tuple[str, Path], s3_env: Path, tmp_path: Path, capsys
) -> None:
    run = ["--out", str(tmp_path / "run")]
    err = _one_line_error(["pretrain", "--dataset", "packed", "--data-dir", "s3://no-such-bucket/pack", *run], capsys)
    assert "S3 has no bucket (or container) named 'no-such-bucket'" in err
    err = _one_line_error(["pretrain", "--dataset", "packed", "--data-dir", f"s3://{BUCKET}/elsewhere", *run], capsys)
    assert f"no packed dataset at s3://{BUCKET}/elsewhere" in err and "upload the OUT folder" in err
    assert not (tmp_path / "run").exists()


def test_an_unreachable_endpoint_is_reported_in_seconds(
    uploaded: tuple[str, Path], s3_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{_free_port()}")  # nothing listens there
    started = time.monotonic()
    err = _one_line_error(
        ["pretrain", "--dataset", "packed", "--data-dir", uploaded[0], "--out", str(tmp_path)], capsys
    )
    assert "cannot reach S3" in err and "AWS_ENDPOINT_URL" in err
    assert time.monotonic() - started < 60  # litdata's own client would retry 1,000 times


@pytest.mark.parametrize(
    ("url", "module", "extra"),
    [("s3://bucket/pack", "boto3", "s3"), ("gs://bucket/pack", "google.cloud.storage", "gcs"),
     ("azure://container/pack", "azure.storage.blob", "azure")],
)  # fmt: skip
def test_a_missing_package_names_the_extra_that_installs_it(
    url: str, module: str, extra: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # what Python does when the package is not installed
    err = _one_line_error(["pretrain", "--dataset", "packed", "--data-dir", url, "--out", str(tmp_path / "r")], capsys)
    assert f"pip install 'simclr-kit[{extra}]'" in err and STORES[url.split(":")[0]].packages in err


def test_data_pack_refuses_a_url_instead_of_making_a_folder_named_after_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "folder" / "a").mkdir(parents=True)
    err = _one_line_error(["data", "pack", "folder", "s3://bucket/pack"], capsys)
    assert "writes a local folder" in err and "upload" in err
    assert not (tmp_path / "s3:").exists()


def test_the_chunk_cache_is_placed_and_bounded_by_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("SIMCLR_CHUNK_CACHE", "LITDATA_CACHE_DIR", "SIMCLR_CHUNK_CACHE_SIZE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SIMCLR_CACHE", str(tmp_path / "simclr"))
    assert chunk_cache_dir() == tmp_path / "simclr" / "chunks" and chunk_cache_size() is None
    monkeypatch.setenv("LITDATA_CACHE_DIR", str(tmp_path / "litdata"))
    assert chunk_cache_dir() == tmp_path / "litdata"
    monkeypatch.setenv("SIMCLR_CHUNK_CACHE", str(tmp_path / "scratch"))
    monkeypatch.setenv("SIMCLR_CHUNK_CACHE_SIZE", "20GB")
    options = stream_options("s3://bucket/pack/train")
    assert options["cache_dir"] == str(tmp_path / "scratch") and options["max_cache_size"] == 20 * 2**30
    assert stream_options(tmp_path / "local") == {}  # a local pack is read in place
    monkeypatch.setenv("SIMCLR_CHUNK_CACHE_SIZE", "a lot")
    with pytest.raises(UserError, match="SIMCLR_CHUNK_CACHE_SIZE: cannot read the size 'a lot'"):
        chunk_cache_size()


def test_a_saved_stream_position_follows_its_chunk_cache_only_for_the_same_upload() -> None:
    saved = {"input_dir_url": "s3://b/pack/train", "input_dir_path": "/old/chunks/abc/1700", "cache_dir_path": "/old"}
    moved = follow_moved_chunk_cache(saved, "/scratch/chunks/abc/1700", "/scratch/chunks")
    assert moved["input_dir_path"] == "/scratch/chunks/abc/1700" and moved["cache_dir_path"] == "/scratch/chunks"
    reuploaded = follow_moved_chunk_cache(saved, "/scratch/chunks/abc/1800", "/scratch/chunks")
    assert reuploaded == saved  # another upload: left for litdata to refuse
    local = {"input_dir_url": None, "input_dir_path": "/data/pack/train"}
    assert follow_moved_chunk_cache(local, "/elsewhere/pack/train", None) == local


def test_azure_reads_its_account_from_the_variables_of_the_az_command(monkeypatch: pytest.MonkeyPatch) -> None:
    """Azure's client needs its account URL and credential given (litdata passes them on); they come from the
    variables ``az`` reads. The Azure packages are stood in for: only the options are checked here."""

    class DefaultAzureCredential:
        pass

    for name, module in (
        ("azure", types.ModuleType("azure")),
        ("azure.storage", types.ModuleType("azure.storage")),
        ("azure.storage.blob", types.ModuleType("azure.storage.blob")),
        ("azure.identity", types.SimpleNamespace(DefaultAzureCredential=DefaultAzureCredential)),
    ):
        monkeypatch.setitem(sys.modules, name, module)
    for name in (
        "AZURE_STORAGE_CONNECTION_STRING",
        "AZURE_STORAGE_ACCOUNT",
        "AZURE_STORAGE_KEY",
        "AZURE_STORAGE_SAS_TOKEN",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("LITDATA_ASYNC_CHUNK_PREFETCH", raising=False)
    with pytest.raises(UserError, match="azure:// needs the storage account: set AZURE_STORAGE_CONNECTION_STRING"):
        stream_options("azure://container/pack/train")

    azurite = "DefaultEndpointsProtocol=http;AccountName=dev;AccountKey=a2V5;BlobEndpoint=http://127.0.0.1:10000/dev;"
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite)
    options = stream_options("azure://container/pack/train")["storage_options"]
    assert options == {
        "account_url": "http://127.0.0.1:10000/dev",
        "credential": {"account_name": "dev", "account_key": "a2V5"},
    }
    assert os.environ["LITDATA_ASYNC_CHUNK_PREFETCH"] == "0"  # litdata's concurrent Azure path ignores the options

    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING")
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT", "acct")
    monkeypatch.setenv("AZURE_STORAGE_SAS_TOKEN", "?sv=1&sig=x")
    assert stream_options("azure://c/p")["storage_options"] == {
        "account_url": "https://acct.blob.core.windows.net?sv=1&sig=x"
    }
    monkeypatch.delenv("AZURE_STORAGE_SAS_TOKEN")
    credential = stream_options("azure://c/p")["storage_options"]["credential"]
    assert isinstance(credential, DefaultAzureCredential)  # az login, a managed identity, a service principal


def test_every_store_has_its_extra_in_pyproject_and_in_all() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    for store in STORES.values():
        declared = " ".join(extras[store.extra])
        assert all(package in declared for package in store.packages.split(" and ")), store
        assert store.extra in extras["all"][0]
    assert any(requirement.startswith("moto[server]") for requirement in extras["dev"])
