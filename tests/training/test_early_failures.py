"""Failures before training starts are one line and exit code 2, before the run directory exists (issue 25):
a ``--devices``/``--num-nodes`` that does not match the processes torchrun or SLURM started (which Lightning
reported later as a ValueError traceback), and an image size the backbone cannot take (a timm ViT made for
224 px at 32 px, which failed its first step with an AssertionError and left a directory holding only its
config)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from simclr.cli import main
from simclr.errors import UserError
from simclr.training.plan import check_launched_processes

TINY = [
    "--dataset", "spirograph", "--train-size", "32", "--test-size", "16", "--batch-size", "16", "--epochs", "1",
    "--accelerator", "cpu", "--knn-every-epochs", "0", "--quiet",
]  # fmt: skip
TORCHRUN = {"TORCHELASTIC_RUN_ID": "test", "WORLD_SIZE": "4", "LOCAL_WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0"}
TORCHRUN_ADVICE = "torchrun started 4 process(es), 2 on this node, but --devices 1 --num-nodes 1 ask for 1; pass "
TORCHRUN_ADVICE += "--devices 2 --num-nodes 2"
SLURM = {"SLURM_NTASKS": "8", "SLURM_NTASKS_PER_NODE": "4", "SLURM_NNODES": "2", "SLURM_JOB_NAME": "simclr"}
SLURM_ADVICE = "SLURM started 4 task(s) per node on 2 node(s), but --devices 1 --num-nodes 1 ask for 1 per node on "
SLURM_ADVICE += "1; pass --devices 4 --num-nodes 2"


def one_line_error(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(list(args)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("simclr: error: ") and "Traceback" not in err, err
    return err.strip()


@pytest.mark.parametrize(
    ("env", "advice"), [(TORCHRUN, TORCHRUN_ADVICE), (SLURM, SLURM_ADVICE)], ids=["torchrun", "slurm"]
)
def test_devices_that_do_not_match_the_launched_processes_are_one_line_before_the_run_directory(
    env: dict[str, str],
    advice: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name, value in env.items():  # what torchrun or srun sets in the processes it starts
        monkeypatch.setenv(name, value)
    err = one_line_error(capsys, "pretrain", *TINY, "--out", str(tmp_path / "run"))
    assert advice in err
    assert not (tmp_path / "run").exists()


def test_the_launched_processes_that_match_pass_and_lightning_s_order_is_kept() -> None:
    check_launched_processes(2, 2, TORCHRUN)
    check_launched_processes(4, 2, SLURM)
    check_launched_processes(1, 1, {**SLURM, "SLURM_JOB_NAME": "bash"})  # salloc's shell: not a job step
    check_launched_processes(1, 1, {})
    with pytest.raises(UserError, match="SLURM started 8 tasks without --ntasks-per-node"):
        check_launched_processes(8, 1, {"SLURM_NTASKS": "8", "SLURM_JOB_NAME": "simclr"})
    with pytest.raises(UserError, match="SLURM started"):  # srun torchrun: Lightning reads SLURM's tasks first
        check_launched_processes(2, 2, {**TORCHRUN, **SLURM, "SLURM_NTASKS_PER_NODE": "1"})


@pytest.mark.slow
def test_torchrun_with_more_processes_than_devices_stops_every_rank_in_one_line(tmp_path: Path) -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "simclr"]
    result = subprocess.run(
        [*command, "pretrain", *TINY, "--out", str(tmp_path / "run")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0  # torchrun's own code for a failed worker
    lines = [line for line in result.stderr.splitlines() if line.startswith("simclr: ")]
    expected = (
        "simclr: error: torchrun started 2 process(es), 2 on this node, but --devices 1 --num-nodes 1 ask for "
        "1; pass --devices 2 --num-nodes 1 (--nproc-per-node and --nnodes of torchrun)"
    )
    assert lines and set(lines) == {expected}, result.stderr
    assert "exitcode  : 2" in result.stderr  # torchrun's report names the worker's exit code
    assert "ValueError" not in result.stderr
    assert not (tmp_path / "run").exists()


def test_a_backbone_that_cannot_take_the_image_size_is_one_line_before_the_run_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("timm")
    run = tmp_path / "run"
    # the ViT is built for the run's size (img_size), but 8 px images are smaller than its 16 px patches
    vit = ["--backbone", "timm:vit_tiny_patch16_224", "--image-size", "8"]
    err = one_line_error(capsys, "pretrain", *TINY, *vit, "--out", str(run))
    assert "backbone timm:vit_tiny_patch16_224 cannot take 8 px images (RuntimeError: " in err
    # the hint is the ViT's own: built for 8 px, it needs a multiple of its 16 px patches (not timm's 224 px)
    assert "pass an --image-size that is a multiple of its 16 px patches (e.g. 16), or choose another --backbone" in err
    assert "--image-size 224" not in err
    assert not run.exists()
