"""Hostile and unlucky pretraining: one run per directory, resume that refuses to mix settings, safe
checkpoint loading, stale temporaries, and one-line errors found before any work (issue 14)."""

from __future__ import annotations

import csv
import errno
import json
import os
import pickle
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from simclr.cli import main

pytestmark = pytest.mark.slow

TINY = [
    "--dataset", "spirograph", "--train-size", "64", "--test-size", "16", "--batch-size", "16", "--epochs", "2",
    "--precision", "32", "--knn-every-epochs", "0", "--workers", "1", "--image-size", "8", "--quiet",
]  # fmt: skip


def simclr(*args: str) -> subprocess.Popen[str]:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.Popen(
        [sys.executable, "-m", "simclr", "pretrain", *args], env=env, text=True, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )  # fmt: skip


def one_line_error(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(list(args)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("simclr: error: "), err
    return err


def metric_rows(run: Path) -> list[dict[str, str]]:
    with open(run / "metrics.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def tree(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_size for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("finished") / "run"
    assert main(["pretrain", *TINY, "--out", str(run)]) == 0
    return run


# -- 1. one run per directory -------------------------------------------------------------------------
def test_two_runs_started_together_with_the_same_out_one_runs_the_other_exits_2(tmp_path: Path) -> None:
    outs = [tmp_path / f"race{attempt}" for attempt in range(2)]
    races = {out: [simclr(*TINY, "--out", str(out)) for _ in range(2)] for out in outs}  # two races at once
    for out, procs in races.items():
        results = [(proc.wait(timeout=300), proc.stderr.read() if proc.stderr else "") for proc in procs]
        codes = sorted(code for code, _ in results)
        assert codes == [0, 2], results
        message = next(err for code, err in results if code == 2).strip()
        assert "\n" not in message and ("is in use by process" in message or "already holds a run" in message)
        rows = [r for r in metric_rows(out) if r["train_loss"]]
        assert [int(r["step"]) for r in rows] == list(range(8))  # one curve: no interleaved rows
        assert not (out / ".lock").exists()


def test_resume_of_a_run_that_is_still_training_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "busy"
    long_run = simclr(*TINY, "--epochs", "50", "--checkpoint-every-steps", "1", "--out", str(out))
    try:
        deadline = time.time() + 120
        while not (out / "checkpoints" / "last.ckpt").exists() and time.time() < deadline:
            time.sleep(0.1)
        second = subprocess.run(
            [sys.executable, "-m", "simclr", "pretrain", "--resume", str(out)], capture_output=True, text=True
        )
        assert second.returncode == 2
        assert f"{out} is in use by process {long_run.pid}" in second.stderr
    finally:
        long_run.kill()
        long_run.wait()


def test_a_lock_left_by_a_dead_process_is_reported_and_taken_over(tmp_path: Path, finished_run: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    run = tmp_path / "run"
    run.mkdir()
    import socket

    (run / ".lock").write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(), "start": "1"}))
    assert main(["pretrain", *TINY, "--epochs", "1", "--out", str(run)]) == 0
    assert (
        f"process {dead.pid}, which trained here, ended without releasing the directory"
        in (run / "train.log").read_text()
    )
    assert not (run / ".lock").exists()


# -- 2. resume refuses to mix settings -----------------------------------------------------------------
def test_resume_with_changed_settings_is_refused_with_the_differences(
    finished_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = tree(finished_run)
    err = one_line_error(capsys, "pretrain", "--resume", str(finished_run), "--batch-size", "32", "--lr", "1.0")
    assert "would change how it trains (lr None -> 1.0, batch_size 16 -> 32)" in err
    assert "--resume-with-changes" in err
    assert tree(finished_run) == before  # nothing rewritten


def test_resume_with_changes_records_the_change(tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert main(["pretrain", *TINY, "--max-steps", "4", "--out", str(run)]) == 0
    args = ["pretrain", "--resume", str(run), "--resume-with-changes", "--lr", "0.5", "--max-steps", "6", "--quiet"]
    assert main(args) == 0
    history = yaml.safe_load((run / "config-history.yaml").read_text())
    assert history[0]["step"] == 4 and history[0]["changes"] == {"lr": {"from": None, "to": 0.5}}
    assert yaml.safe_load((run / "config.yaml").read_text())["lr"] == 0.5
    events = [r for r in metric_rows(run) if r["event"]]
    assert [(r["step"], r["event"]) for r in events] == [("4", "settings changed on resume: lr None -> 0.5")]
    assert "settings changed on resume: lr None -> 0.5 (from step 4" in (run / "train.log").read_text()


def test_resume_may_stop_later_without_flagging_a_change(tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert main(["pretrain", *TINY, "--max-steps", "2", "--out", str(run)]) == 0
    assert main(["pretrain", "--resume", str(run), "--max-steps", "6", "--workers", "2", "--quiet"]) == 0
    rows = [r for r in metric_rows(run) if r["train_loss"]]
    assert [int(r["step"]) for r in rows] == list(range(6))
    assert not (run / "config-history.yaml").exists()


# -- 3. stale temporaries ------------------------------------------------------------------------------
def test_temporaries_of_killed_writes_are_removed_on_resume(tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert main(["pretrain", *TINY, "--max-steps", "2", "--out", str(run)]) == 0
    for pid in (99991, 99992, 99993, 99994, 99995):
        (run / "checkpoints" / f".last.ckpt.tmp-{pid}").write_bytes(b"x" * 1000)
    (run / f".backbone.safetensors.tmp-{99996}").write_bytes(b"y")
    assert main(["pretrain", "--resume", str(run), "--max-steps", "3", "--quiet"]) == 0
    assert not [p for p in run.rglob(".*.tmp-*")]
    assert "removed 6 temporary file(s)" in (run / "train.log").read_text()


# -- 5. safe loading -----------------------------------------------------------------------------------
class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, ...]:
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("kind", ["crafted", "truncated", "not-a-checkpoint"])
def test_a_checkpoint_that_is_not_ours_is_refused_even_when_torch_is_told_to_trust_it(
    tmp_path: Path, kind: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    assert main(["pretrain", *TINY, "--max-steps", "2", "--out", str(run)]) == 0
    checkpoint = run / "checkpoints" / "last.ckpt"
    marker = tmp_path / "pwned"
    if kind == "crafted":
        with open(checkpoint, "wb") as handle:
            pickle.dump({"state_dict": _Exploit(marker), "global_step": 2}, handle)
    elif kind == "truncated":
        checkpoint.write_bytes(checkpoint.read_bytes()[:1000])
    else:
        torch.save({"something": torch.zeros(2)}, checkpoint)
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    before = tree(run)
    err = one_line_error(capsys, "pretrain", "--resume", str(run), "--quiet")
    assert "checkpoint" in err and str(checkpoint) in err
    assert not marker.exists()
    assert tree(run) == before


# -- 7. one line, exit 2, found before any work --------------------------------------------------------
@pytest.mark.parametrize("where", ["file", "under-file", "read-only"])
def test_an_out_that_cannot_be_a_run_directory_fails_before_loading_data(
    tmp_path: Path, where: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("keep")
    out = {"file": blocker, "under-file": blocker / "run", "read-only": tmp_path / "ro" / "run"}[where]
    if where == "read-only":
        (tmp_path / "ro").mkdir()
        real_access = os.access
        monkeypatch.setattr(os, "access", lambda p, m: False if Path(p) == tmp_path / "ro" else real_access(p, m))
    start = time.perf_counter()
    err = one_line_error(capsys, "pretrain", "--dataset", "spirograph", "--train-size", "100000", "--out", str(out))
    assert time.perf_counter() - start < 5  # before generating 100,000 images
    assert str(out) in err or str(blocker) in err
    assert blocker.read_text() == "keep"


def test_a_full_disk_while_checkpointing_keeps_the_previous_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    assert main(["pretrain", *TINY, "--max-steps", "2", "--out", str(run)]) == 0
    checkpoint = run / "checkpoints" / "last.ckpt"
    before = checkpoint.read_bytes()
    real_save = torch.save

    def disk_full(obj: object, handle: object, *args: object, **kwargs: object) -> None:
        real_save({"partial": torch.zeros(3)}, handle)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    err = one_line_error(capsys, "pretrain", "--resume", str(run), "--max-steps", "6", "--quiet")
    assert "the disk is full" in err and "previous checkpoint was kept" in err
    assert checkpoint.read_bytes() == before
    assert not list(run.rglob(".*.tmp-*"))


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ({"image_size": "abc"}, "image_size='abc' is not a whole number"),
        ({"stem": "bogus"}, "unknown stem 'bogus'"),
        ({"image_size": "0"}, "image size 0 is outside"),
        ({"image_size": "100000"}, "image size 100000 is outside"),
    ],
)
def test_damaged_backbone_metadata_is_a_one_line_error(
    finished_run: Path, tmp_path: Path, metadata: dict[str, str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from safetensors.torch import save_file

    from simclr.models.backbone_file import read_backbone_metadata

    damaged = tmp_path / "backbone.safetensors"
    meta = read_backbone_metadata(finished_run / "backbone.safetensors").to_strings()
    save_file(load_file(str(finished_run / "backbone.safetensors")), str(damaged), metadata={**meta, **metadata})
    config = str(finished_run / "config.yaml")
    for command in (["knn", str(damaged), "--run-config", config], ["evaluate", str(damaged), "--run-config", config]):
        assert message in one_line_error(capsys, *command)


def test_a_backbone_tensor_of_the_wrong_shape_is_a_one_line_error(
    finished_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from safetensors.torch import save_file

    from simclr.models.backbone_file import read_backbone_metadata

    tensors = load_file(str(finished_run / "backbone.safetensors"))
    tensors["conv1.weight"] = torch.zeros(3, 3, 3, 3)
    damaged = tmp_path / "backbone.safetensors"
    meta = read_backbone_metadata(finished_run / "backbone.safetensors").to_strings()
    save_file(tensors, str(damaged), metadata=meta)
    config = str(finished_run / "config.yaml")
    images = tmp_path / "images"
    images.mkdir()
    for command in (
        ["knn", str(damaged), "--run-config", config],
        ["embed", str(damaged), "--run-config", config, "--data-dir", str(images), "--out", str(tmp_path / "e.npz")],
    ):
        assert "does not fit a resnet18" in one_line_error(capsys, *command)


# -- must-show 3: SIGKILL while checkpointing, again and again ------------------------------------------
KILLS = 4  # each kill restarts a process (seconds of imports); four random moments keep the suite short


def test_sigkill_at_random_moments_while_checkpointing_then_resume_ends_with_the_same_weights(tmp_path: Path) -> None:
    args = [*TINY, "--epochs", "5", "--checkpoint-every-steps", "1"]  # 20 steps, a checkpoint after each
    reference = tmp_path / "reference"
    done = simclr(*args, "--out", str(reference))  # trains beside the killed runs: one thread each, two cores
    run = tmp_path / "killed"
    rng = random.Random(0)
    proc = simclr(*args, "--out", str(run))
    kills = 0
    while kills < KILLS:
        steps = _steps_written(run)
        deadline = time.time() + 120
        while _steps_written(run) == steps and proc.poll() is None and time.time() < deadline:
            time.sleep(0.02)  # this process trains: the next steps end with checkpoints being written
        if proc.poll() is not None:
            break
        time.sleep(rng.uniform(0.0, 0.6))
        if proc.poll() is not None:
            break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        proc = simclr("--resume", str(run), "--quiet")
    assert proc.wait(timeout=300) == 0
    assert done.wait(timeout=300) == 0
    assert kills == KILLS, "every kill lands mid-run: each process trains a step before it is killed"
    expected, got = load_file(str(reference / "backbone.safetensors")), load_file(str(run / "backbone.safetensors"))
    assert expected.keys() == got.keys()
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=1e-5, atol=1e-6, msg=name)
    # the loss curve too: one row per step, the rows of steps trained after the last checkpoint and lost to a
    # kill replaced by the resumed run's, every loss the uninterrupted run's
    curve = {int(r["step"]): float(r["train_loss"]) for r in metric_rows(run) if r["train_loss"]}
    reference_curve = {int(r["step"]): float(r["train_loss"]) for r in metric_rows(reference) if r["train_loss"]}
    assert sorted(curve) == list(range(20)) == sorted(reference_curve)
    for step, loss in reference_curve.items():
        assert curve[step] == pytest.approx(loss, rel=1e-4, abs=1e-5), step
    assert not list(run.rglob(".*.tmp-*")) and not (run / ".lock").exists()


def _steps_written(run: Path) -> int:
    try:
        return sum(1 for row in metric_rows(run) if row["train_loss"])
    except (OSError, KeyError):
        return 0
