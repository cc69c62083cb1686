"""torchrun with two processes on an image folder over the memory budget: the folder is packed once, by one
process while the other waits, and both train on their own shards of it, in bounded time."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from simclr.data.cache_folder import CACHE_ENV
from simclr.data.pack_format import PACK_LOCK

from ..conftest import kill_tree, noise_pngs

pytestmark = pytest.mark.slow

IMAGES, BATCH, RANKS = 64, 8, 2

# `simclr pretrain` as torchrun starts it, with every part a process packs recorded (pid and part): the
# record tells how many processes packed
DRIVER = textwrap.dedent(
    """
    import os, sys
    from simclr.cli import main
    from simclr.data import packed

    record, argv = sys.argv[1], sys.argv[2:]
    packing = packed._pack_part

    def recorded(part):
        with open(record, "a") as handle:
            handle.write(f"{os.getpid()} {part}\\n")
        return packing(part)

    packed._pack_part = recorded
    sys.exit(main(argv))
    """
)
# what a torchrun of the test's own environment would otherwise hand down to the ranks
_LAUNCH_ENV = ("MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "SIMCLR_RUN_DIR")


def test_torchrun_packs_a_folder_over_the_budget_once_and_both_ranks_train_on_it(tmp_path: Path) -> None:
    folder = noise_pngs(tmp_path / "folder", IMAGES, classes=("class0", "class1"), size=16)
    (tmp_path / "driver.py").write_text(DRIVER)
    record, run, cache = tmp_path / "packed-parts.txt", tmp_path / "run", tmp_path / "cache"
    env = {key: value for key, value in os.environ.items() if key not in _LAUNCH_ENV}
    env.update({CACHE_ENV: str(cache), "OMP_NUM_THREADS": "1"})
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(RANKS),
        str(tmp_path / "driver.py"), str(record),
        "pretrain", "--dataset", "imagefolder", "--data-dir", str(folder), "--memory-budget", "1KB",
        "--accelerator", "cpu", "--devices", str(RANKS), "--strategy", "ddp", "--batch-size", str(BATCH),
        "--epochs", "1", "--workers", "1", "--precision", "32", "--knn-every-epochs", "0", "--optimizer", "sgd",
        "--out", str(run),
    ]  # fmt: skip
    # the output goes to a file: a rank left running would hold a pipe open, and reading it would never end
    output_file = tmp_path / "torchrun.log"
    with open(output_file, "w") as handle:
        proc = subprocess.Popen(command, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        proc.wait(timeout=300)  # it used to hang for ever, with no output
    except subprocess.TimeoutExpired:
        kill_tree(proc.pid)
        pytest.fail(f"torchrun did not finish in 300 s:\n{output_file.read_text()}")
    output = output_file.read_text()
    assert proc.returncode == 0, output

    packers = {line.split()[0] for line in record.read_text().splitlines()}
    parts = [line.split()[1] for line in record.read_text().splitlines()]
    assert len(packers) == 1 and parts == ["0"], "one process packed the folder's one part, once"
    (entry,) = (cache / "packed").iterdir()
    assert (entry / "train" / "index.json").is_file() and not (entry / PACK_LOCK).exists()
    log = (run / "train.log").read_text()
    assert f"streaming the training split from {entry / 'train'}" in log
    assert f"{IMAGES} images at 16x16 px take 48.0 KB decoded, 96.0 KB for the 2 processes of the machine" in log
    if "waiting for process" in log:  # rank 0 waited for rank 1, which packed
        assert f"waiting for process {packers.pop()} on " in log
    with open(run / "metrics.csv", newline="") as handle:
        steps = [row for row in csv.DictReader(handle) if row["train_loss"]]
    assert len(steps) == IMAGES // (BATCH * RANKS)  # each rank trained on its half: disjoint shards
