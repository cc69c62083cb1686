"""Pretraining on streamed data: packed datasets, image folders over the memory budget, and a SIGKILL in
the middle of an epoch that the resumed run finishes without repeating or skipping a sample."""

from __future__ import annotations

import os
import runpy
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from simclr.cli import main
from simclr.data.pack_settings import PackConfig
from simclr.data.packed import pack_dataset

from ..conftest import noise_pngs

pytestmark = pytest.mark.slow

# views of 16 px: a quarter of the compute of the images' 32 px; what is checked does not depend on the size
FAST = ["--epochs", "1", "--batch-size", "16", "--precision", "32", "--workers", "1", "--optimizer", "sgd", "--quiet"]
FAST += ["--image-size", "16"]


def test_pretrain_streams_a_packed_dataset(cifar_small: Path, tmp_path: Path) -> None:
    pack_dataset(str(cifar_small), tmp_path / "packed", PackConfig(workers=1))
    run = tmp_path / "run"
    assert (
        main(["pretrain", "--dataset", "packed", "--data-dir", str(tmp_path / "packed"), "--out", str(run), *FAST]) == 0
    )
    log = (run / "train.log").read_text()
    assert f"streaming the training split from {tmp_path / 'packed' / 'train'}" in log
    assert "dataset packed: 300 training images of 16px, 100 test images" in log
    assert "kNN monitor: 300 bank and 100 query images decoded from the streamed splits" in log
    rows = (run / "metrics.csv").read_text().splitlines()
    assert len([r for r in rows[1:] if r.split(",")[2]]) == 300 // 16  # one row per step
    assert (run / "backbone.safetensors").is_file()


def test_an_image_folder_over_the_memory_budget_is_packed_once_and_streamed(cifar_small: Path, tmp_path: Path) -> None:
    common = ["--dataset", "imagefolder", "--data-dir", str(cifar_small), "--knn-every-epochs", "0", "--max-steps", "2"]
    common += FAST
    pack_dir = tmp_path / "cache"
    streamed = tmp_path / "streamed"
    assert (
        main(["pretrain", *common, "--memory-budget", "100KB", "--pack-dir", str(pack_dir), "--out", str(streamed)])
        == 0
    )
    log = (streamed / "train.log").read_text()
    assert "300 images at 16x16 px take 225.0 KB decoded; memory budget 100.0 KB: packed once and streamed" in log
    assert (pack_dir / "train" / "index.json").is_file() and (pack_dir / "test" / "index.json").is_file()
    assert f"streaming the training split from {pack_dir / 'train'}" in log

    again = tmp_path / "again"  # a second run reuses the finished pack, decoding on the device (here the CPU)
    stamp = (pack_dir / "train" / "index.json").stat().st_mtime_ns
    budget = ["--memory-budget", "100KB", "--pack-dir", str(pack_dir)]
    assert main(["pretrain", *common, *budget, "--decode", "device", "--out", str(again)]) == 0
    assert (pack_dir / "train" / "index.json").stat().st_mtime_ns == stamp
    assert (
        "decoding and cropping the streamed images in batches on the training device"
        in (again / "train.log").read_text()
    )
    losses = [float(row.split(",")[2]) for row in (again / "metrics.csv").read_text().splitlines()[1:]]
    assert len(losses) == 2 and all(0 < loss < 10 for loss in losses)

    in_memory = tmp_path / "in-memory"
    assert main(["pretrain", *common, "--memory-budget", "8GB", "--out", str(in_memory)]) == 0
    log = (in_memory / "train.log").read_text()
    assert "memory budget 8.0 GB: held in memory" in log and "streaming" not in log


DRIVER = textwrap.dedent(
    '''
    """Pretrain (or resume) and append every trained step's epoch and sample indices to RECORD."""
    import os
    import sys

    import lightning as L

    from simclr.config import build_config
    from simclr.training.pretrain import run_pretraining


    class Recorder(L.Callback):
        def __init__(self, path):
            self.path = path

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            indices = " ".join(str(int(i)) for i in batch["index"])
            with open(self.path, "a") as handle:
                handle.write(f"{trainer.global_step - 1} {trainer.current_epoch} {indices}\\n")
                handle.flush()
                os.fsync(handle.fileno())


    data, out, record, resume = sys.argv[1:5]
    values = dict(
        dataset="packed", data_dir=data, out=out, batch_size=16, epochs=2, image_size=16, precision="32", workers=1,
        optimizer="sgd", knn_every_epochs=0, checkpoint_every_steps=2, resume=out if resume == "resume" else None,
    )
    run_pretraining(build_config({}, values), quiet=True, extra_callbacks=[Recorder(record)])
    '''
)


def _records(path: Path) -> list[tuple[int, int, list[int]]]:
    rows = []
    for line in path.read_text().splitlines():
        step, epoch, *indices = (int(token) for token in line.split())
        rows.append((step, epoch, indices))
    return rows


def test_sigkill_mid_epoch_then_resume_sees_every_sample_of_the_epoch_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = noise_pngs(
        tmp_path / "folder", 96, classes=("c0", "c1", "c2", "c3")
    )  # 96 = 6 steps of 16 per epoch, nothing dropped
    pack_dataset(str(folder), tmp_path / "packed", PackConfig(workers=1))
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    run, first, second = tmp_path / "run", tmp_path / "first.txt", tmp_path / "second.txt"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    data = str(tmp_path / "packed" / "train")

    proc = subprocess.Popen([sys.executable, str(driver), data, str(run), str(first), "new"], env=env)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if first.exists() and len(first.read_text().splitlines()) >= 4 and (run / "checkpoints" / "last.ckpt").exists():
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = len(_records(first))
    assert 0 < killed_at < 12, "the run must be killed mid-training"

    # the resume is not about a process: the same driver runs in this one (one import of torch fewer)
    monkeypatch.setattr(sys, "argv", [str(driver), data, str(run), str(second), "resume"])
    runpy.run_path(str(driver), run_name="__main__")
    after = _records(second)
    resumed_from = after[0][0]  # the checkpoint's step: the steps the killed run trained after it are lost
    assert 0 < resumed_from <= killed_at
    trained = [row for row in _records(first) if row[0] < resumed_from] + after
    assert [step for step, _, _ in trained] == list(range(12))
    for epoch in (0, 1):
        seen = [i for _, e, indices in trained if e == epoch for i in indices]
        assert sorted(seen) == list(range(96)), f"epoch {epoch}: each sample exactly once"
