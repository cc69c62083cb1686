"""The prepared GPU window (benchmarks/gpu_window.sh) runs every step at toy sizes on the CPU (issue 15):
GPU time is scarce, so the script must not find its bugs there."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from gpu_window import end_to_end_rate, plan_epochs  # noqa: E402


def test_the_plan_keeps_the_recipe_when_it_fits_and_shortens_it_when_not() -> None:
    assert plan_epochs(200, 50_000, 25_000.0, 400.0) == 200
    assert plan_epochs(200, 50_000, 10_400.0, 400.0) == 83
    assert plan_epochs(200, 50_000, 100.0, 10.0) == 1
    assert plan_epochs(200, 50_000, None, 10.0) == 200  # no measurement: the recipe, cut by the time limit


def test_the_end_to_end_row_is_read_from_the_throughput_report() -> None:
    report = (
        "| (a) | simclr end to end (`run_pretraining`) | bf16-mixed, channels_last | 10400.5 |\n| (b) | x | y | 3.0 |"
    )
    assert end_to_end_rate(report) == 10400.5
    assert end_to_end_rate("nothing") is None


@pytest.mark.slow
def test_the_tiny_window_runs_every_step(cifar_small: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    threads = os.environ.get("OMP_NUM_THREADS", "2")  # 1 under pytest-xdist
    env = dict(os.environ, OUT=str(out), PYTHON=sys.executable, PYTHON_SET="1", OMP_NUM_THREADS=threads)
    done = subprocess.run(
        [str(REPO / "benchmarks" / "gpu_window.sh"), "--tiny", "--data-dir", str(cifar_small)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads((out / "summary.json").read_text())
    steps = summary["steps"]
    assert [steps[name]["status"] for name in ("throughput", "pretrain", "knn", "linear-eval", "decode", "end")] == [
        "done"
    ] * 6
    assert steps["pretrain"]["epochs_planned"] == 1 and steps["pretrain"]["global_step"] == 4
    assert steps["throughput"]["end_to_end_images_per_s"]["16"] > 0
    for name in ("throughput.md", "knn.txt", "linear.txt", "decode.md", "machine.txt", "run/backbone.safetensors"):
        assert (out / name).is_file(), name
