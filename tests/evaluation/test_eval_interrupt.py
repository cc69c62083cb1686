"""An evaluation command stopped by SIGTERM or SIGINT sent to its whole process group (a terminal's Ctrl-C,
SLURM) while its loader workers decode a packed split: exit 143 / 130 with one line, the workers ignore the
signal and end with their parent, and the evaluation folder holds nothing half-written (issue 25)."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from simclr.cli import main
from simclr.data.pack_settings import PackConfig
from simclr.data.packed import pack_dataset

from ..conftest import noise_pngs

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def packed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pack of 512 training and 128 test images of 32 px in 4 classes (PNG noise): enough that its loader
    workers live for a moment."""
    folder = tmp_path_factory.mktemp("folder")
    noise_pngs(folder / "train", 512, classes=("c0", "c1", "c2", "c3"))
    noise_pngs(folder / "test", 128, classes=("c0", "c1", "c2", "c3"), seed=1)
    out = tmp_path_factory.mktemp("packed") / "pack"
    pack_dataset(str(folder), out, PackConfig(workers=1))
    return out


@pytest.mark.parametrize(("signum", "exit_code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_an_evaluation_stopped_by_a_signal_to_its_process_group_exits_in_one_line_and_leaves_nothing_partial(
    signum: int,
    exit_code: int,
    packed: Path,
    make_run: Callable[..., Path],
    session_runs: Callable[..., Any],
) -> None:
    run = make_run("packed", packed)
    evaluation = session_runs("knn", str(run), "--workers", "2", "--batch-size", "16", command="knn")
    deadline = time.time() + 120
    while time.time() < deadline and evaluation.proc.poll() is None and not evaluation.children():
        time.sleep(0.01)
    assert evaluation.children(), (
        f"the loader workers must be running (exit code {evaluation.proc.poll()})\n{evaluation.output()}"
    )
    evaluation.signal_group(signum)

    assert evaluation.wait() == exit_code, evaluation.output()  # wait: and no worker outlives it
    output = evaluation.output()
    name = signal.Signals(signum).name
    expected = f"simclr: interrupted ({name}) before it finished; nothing half-written was kept"
    assert output.strip().splitlines()[-1] == expected
    assert "Traceback" not in output and "DataLoader worker" not in output, output
    folder = run / "eval"
    left = sorted(str(path.relative_to(run)) for path in folder.rglob("*")) if folder.exists() else []
    assert not [name for name in left if ".tmp-" in name or name.endswith(".lock") or "metrics.json" in name], left

    assert main(["knn", str(run), "--workers", "2", "--batch-size", "16"]) == 0  # the same command again finishes
    assert (folder / "metrics.json").is_file() and not (folder / ".lock").exists()
