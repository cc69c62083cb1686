"""The prepared GPU window of issue 15: everything one GPU session measures, in a fixed time budget.

Steps, in order; each writes its output under OUT as soon as it ends, and ``summary.json`` says after every
step what ran, how long it took and what it found, so a window cut short still leaves what it measured:

1. ``throughput``: benchmarks/throughput.py rows (end to end, model-only, per-image baseline) at batch 256
   and 512 -> ``throughput.md``;
2. ``pretrain``: the recipe (lightly-cifar10-resnet18-200ep, ``--compile``, bf16) on the
   CIFAR-10 folders -> ``run/``. Its epoch count is the recipe's when the measured end-to-end speed at its
   batch fits it in the time left (after a reserve for the later steps), else the largest count that fits,
   recorded as ``epochs_planned`` with ``reduced: true`` and said in the log; the peak GPU memory of the
   training process is recorded beside it;
3. ``knn``: ``simclr knn RUN --k 200 --temperature 0.1`` (full train bank, official test split) -> ``knn.txt``;
4. ``linear-eval``: ``simclr linear-eval RUN`` -> ``linear.txt``;
5. ``decode``: benchmarks/decode.py, briefly (cpu vs device decoding) -> ``decode.md``.

A step that fails stops the window (exit 1) with its log in ``<step>.log``; a pretraining stopped by the
time limit still leaves its last epoch's backbone, which the evaluations then measure (recorded as such).
``--tiny`` runs every step at toy sizes on the CPU (tests/test_gpu_window.py): a check that the window works,
not a measurement.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "src" / "simclr" / "recipes" / "lightly-cifar10-resnet18-200ep.yaml"
DEFAULT_DATA = REPO.parent / "shared" / "data" / "cifar10"
# seconds kept for what follows pretraining (kNN and linear probe on GPU features, the decode rows), and
# for the run's own start (data, compile) beyond its epochs
EVAL_RESERVE_S = 150.0
START_RESERVE_S = 75.0


@dataclass(frozen=True)
class Sizes:
    """What each step runs at: the window's sizes, or the CPU check's toy sizes."""

    throughput_batches: tuple[int, ...]
    throughput_steps: int
    throughput_warmup: int
    train_images: int | None  # None: the whole training split
    batch_size: int | None  # None: the recipe's
    image_size: int | None
    epochs: int | None  # None: the recipe's
    knn_every_epochs: int
    compile: bool
    precision: str
    eval_limits: tuple[str, ...]
    linear_args: tuple[str, ...]
    decode_args: tuple[str, ...]


WINDOW = Sizes(
    throughput_batches=(256, 512),
    throughput_steps=30,
    throughput_warmup=10,
    train_images=None,
    batch_size=None,
    image_size=None,
    epochs=None,
    knn_every_epochs=50,
    compile=True,
    precision="bf16-mixed",
    eval_limits=(),
    linear_args=(),
    decode_args=("--per-class", "50", "--repeats", "1", "--warmup", "2", "--workers", "4"),
)
TINY = Sizes(
    throughput_batches=(16,),
    throughput_steps=2,
    throughput_warmup=1,
    train_images=64,
    batch_size=16,
    image_size=16,
    epochs=1,
    knn_every_epochs=0,
    compile=False,
    precision="32",
    eval_limits=("--limit-train-images", "100", "--limit-test-images", "50"),
    linear_args=("--max-iter", "10", "--l2-grid", "1e-3"),
    decode_args=("--per-class", "2", "--repeats", "1", "--warmup", "1", "--workers", "1", "--batch-size", "4"),
)


@dataclass
class Window:
    """The window's clock and its record (``summary.json``, rewritten after every step)."""

    out: Path
    budget_s: float
    start: float = field(default_factory=time.monotonic)
    summary: dict[str, Any] = field(default_factory=dict)

    def left(self) -> float:
        return self.budget_s - (time.monotonic() - self.start)

    def record(self, step: str, **values: Any) -> None:
        self.summary.setdefault("steps", {})[step] = values
        self.summary["elapsed_s"] = round(time.monotonic() - self.start, 1)
        (self.out / "summary.json").write_text(json.dumps(self.summary, indent=2) + "\n")
        print(f"[gpu_window] {step}: {json.dumps(values)}", flush=True)

    def run(self, step: str, command: list[str], limit_s: float) -> subprocess.CompletedProcess[str] | None:
        """Run one step's command, its output in ``<step>.log``; None when the time limit stopped it."""
        started = time.monotonic()
        with open(self.out / f"{step}.log", "w") as log:
            try:
                done = subprocess.run(
                    command, stdout=log, stderr=subprocess.STDOUT, text=True, timeout=max(1.0, limit_s), cwd=REPO
                )
            except subprocess.TimeoutExpired:
                self.summary.setdefault("timed_out", []).append(step)
                return None
        if done.returncode != 0:
            self.record(step, status="failed", exit_code=done.returncode, seconds=round(time.monotonic() - started, 1))
            raise SystemExit(
                f"gpu_window: step {step} failed (exit {done.returncode}); see {self.out / (step + '.log')}"
            )
        return done


def end_to_end_rate(markdown: str) -> float | None:
    """Row (a) of a throughput.py report: source images/s end to end."""
    match = re.search(r"^\| \(a\) \|.*\| ([0-9.]+) \|$", markdown, flags=re.MULTILINE)
    return float(match.group(1)) if match else None


def plan_epochs(recipe_epochs: int, train_images: int, images_per_s: float | None, seconds: float) -> int:
    """The recipe's epochs when they fit in ``seconds`` at ``images_per_s``, else the most that fit (>= 1).

    >>> plan_epochs(200, 50_000, 25_000.0, 500.0)
    200
    >>> plan_epochs(200, 50_000, 10_000.0, 500.0)
    100
    """
    if images_per_s is None or images_per_s <= 0:
        return recipe_epochs
    fit = math.floor(seconds * images_per_s / train_images)
    return max(1, min(recipe_epochs, fit))


def step_throughput(window: Window, sizes: Sizes, data_dir: Path, python: str) -> float | None:
    report = window.out / "throughput.md"
    rates: dict[int, float | None] = {}
    status = "done"
    for batch in sizes.throughput_batches:
        before = report.read_text() if report.exists() else ""
        command = [python, "benchmarks/throughput.py", "--data-dir", str(data_dir), "--batch-size", str(batch)]
        command += ["--steps", str(sizes.throughput_steps), "--warmup", str(sizes.throughput_warmup)]
        command += ["--repeats", "1", "--workers", "4" if sizes is WINDOW else "1", "--record", str(report)]
        cap = 120.0 if sizes is WINDOW else window.left()  # about a minute per batch size on a GPU
        if window.run(f"throughput-{batch}", command, min(cap, window.left())) is None:
            status = f"timed out at batch {batch} (the rows before it are in {report.name})"
            break
        rates[batch] = end_to_end_rate(report.read_text()[len(before) :])
    window.record("throughput", status=status, end_to_end_images_per_s=rates, report=report.name)
    return rates.get(max(sizes.throughput_batches))


def step_pretrain(
    window: Window, sizes: Sizes, data_dir: Path, python: str, rate: float | None
) -> tuple[Path, int, bool]:
    """Pretrain the recipe for the epochs that fit; returns the run directory, its planned epochs and whether
    training finished."""
    import yaml

    recipe = yaml.safe_load(RECIPE.read_text())
    train_images = sizes.train_images or 50_000
    seconds = window.left() - EVAL_RESERVE_S - START_RESERVE_S
    epochs = sizes.epochs or plan_epochs(int(recipe["epochs"]), train_images, rate, seconds)
    reduced = sizes.epochs is None and epochs < int(recipe["epochs"])
    if reduced:
        print(
            f"[gpu_window] {recipe['epochs']} epochs do not fit: {rate:.0f} images/s end to end leaves {seconds:.0f} s "
            f"for training; running {epochs} epochs instead",
            flush=True,
        )
    run_dir = window.out / "run"
    overrides: dict[str, Any] = dict(
        data_dir=str(data_dir),
        download=False,
        out=str(run_dir),
        epochs=epochs,
        precision=sizes.precision,
        compile=sizes.compile,
        knn_every_epochs=sizes.knn_every_epochs,
        log_every_steps=100,
    )
    for name in ("batch_size", "image_size"):
        if getattr(sizes, name) is not None:
            overrides[name] = getattr(sizes, name)
    if sizes.train_images is not None:
        overrides["limit_train_images"] = sizes.train_images
    started = time.monotonic()
    command = [python, __file__, "_pretrain", str(RECIPE), json.dumps(overrides), str(window.out / "pretrain.json")]
    finished = window.run("pretrain", command, window.left() - EVAL_RESERVE_S) is not None
    trained = json.loads((window.out / "pretrain.json").read_text()) if finished else {}
    if not finished and not (run_dir / "backbone.safetensors").exists():
        window.record("pretrain", status="timed out before its first epoch ended")
        raise SystemExit("gpu_window: pretraining timed out before it saved a backbone")
    window.record(
        "pretrain",
        status="done" if finished else "stopped by the time limit (the last epoch's backbone is evaluated)",
        epochs_planned=epochs,
        recipe_epochs=int(recipe["epochs"]),
        reduced=reduced,
        seconds=round(time.monotonic() - started, 1),
        **trained,
    )
    return run_dir, epochs, finished


def _pretrain_child(recipe: str, overrides_json: str, result: str) -> int:
    """Inside the training process: train, then write the step count and the peak GPU memory."""
    import torch

    from simclr.config import build_config
    from simclr.settings import read_yaml
    from simclr.training.pretrain import run_pretraining

    config = build_config(read_yaml(Path(recipe)), json.loads(overrides_json))
    started = time.monotonic()
    outcome = run_pretraining(config, quiet=True)
    values: dict[str, Any] = {
        "global_step": outcome.global_step,
        "final_loss": outcome.final_loss,
        "train_seconds": round(time.monotonic() - started, 1),
        "peak_gpu_memory_mib": None,
    }
    if torch.cuda.is_available():
        values["peak_gpu_memory_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        values["gpu"] = torch.cuda.get_device_name()
    Path(result).write_text(json.dumps(values, indent=2) + "\n")
    return 0


def step_evaluations(window: Window, sizes: Sizes, run_dir: Path, python: str) -> None:
    simclr = [python, "-m", "simclr"]
    knn = [*simclr, "knn", str(run_dir), "--k", "200", "--temperature", "0.1", *sizes.eval_limits]
    done = window.run("knn", knn, window.left() - 60.0)
    if done is not None:
        (window.out / "knn.txt").write_text((window.out / "knn.log").read_text())
    window.record("knn", status="done" if done else "timed out", output="knn.txt" if done else "knn.log")
    linear = [*simclr, "linear-eval", str(run_dir), *sizes.eval_limits, *sizes.linear_args]
    done = window.run("linear-eval", linear, window.left() - 30.0)
    if done is not None:
        (window.out / "linear.txt").write_text((window.out / "linear-eval.log").read_text())
    window.record(
        "linear-eval", status="done" if done else "timed out", output="linear.txt" if done else "linear-eval.log"
    )


def step_decode(window: Window, sizes: Sizes, data_dir: Path, python: str) -> None:
    if window.left() < 20:
        window.record("decode", status="skipped: no time left")
        return
    command = [python, "benchmarks/decode.py", "--data-dir", str(data_dir), *sizes.decode_args]
    done = window.run("decode", [*command, "--record", str(window.out / "decode.md")], window.left() - 5.0)
    window.record("decode", status="done" if done else "timed out", report="decode.md")


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "_pretrain":
        return _pretrain_child(*sys.argv[2:5])
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "gpu-window")))
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--budget-s", type=float, default=660.0, help="the whole window (default 11 minutes)")
    parser.add_argument("--tiny", action="store_true", help="toy sizes on the CPU: checks every step works")
    args = parser.parse_args()
    sizes = TINY if args.tiny else WINDOW
    args.out.mkdir(parents=True, exist_ok=True)
    window = Window(args.out, args.budget_s)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO)
    window.summary.update(
        commit=commit.stdout.strip() or "unknown",
        date=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        tiny=args.tiny,
        recipe=str(RECIPE.relative_to(REPO)),
        budget_s=args.budget_s,
    )
    python = sys.executable
    rate = step_throughput(window, sizes, args.data_dir, python)
    run_dir, _, _ = step_pretrain(window, sizes, args.data_dir, python, rate)
    step_evaluations(window, sizes, run_dir, python)
    step_decode(window, sizes, args.data_dir, python)
    window.record("end", status="done", seconds=round(time.monotonic() - window.start, 1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
