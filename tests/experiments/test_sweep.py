"""``simclr sweep``: grid expansion, validation before anything runs, real tiny cells, resume, failures."""

from __future__ import annotations

import csv
import json
import shutil
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from simclr.cli import main
from simclr.errors import UserError
from simclr.experiments.sweep import SweepRunner, parse_devices
from simclr.experiments.sweep_grid import (
    AutoencoderJob,
    Cell,
    cell_id,
    expand_cells,
    load_sweep,
    parse_sweep,
    validate_cells,
)
from simclr.rundir import SWEEP_MARKER_FILE, RunDir
from simclr.runs import claim, release

REPO = Path(__file__).resolve().parents[2]
TINY_BASE = {
    "dataset": "spirograph",
    "train_size": 64,
    "test_size": 32,
    "image_size": 8,  # a tenth of the compute of 32 px: what the sweep tests check does not depend on it
    "batch_size": 32,
    "max_steps": 2,
    "epochs": 1,
    "knn_every_epochs": 0,
    "precision": "32",
    "channels_last": False,
}


def write_sweep(path: Path, doc: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(doc))
    return path


def test_grid_product_exclude_overrides_and_templates() -> None:
    spec = parse_sweep(
        {
            "base": {
                "backbone": "resnet18",
                "ae_checkpoint": "runs/ae-{dataset}-{head_hidden_dim}",
            },
            "grid": {
                "dataset": ["cifar10", "stl10"],
                "head": ["mlp", "ae"],
                "head_hidden_dim": [128, 256],
            },
            "exclude": [{"head": "mlp", "head_hidden_dim": 256}],
            "cell_overrides": [{"when": {"dataset": "stl10"}, "set": {"batch_size": 500}}],
        },
        default_name="t",
    )
    cells = expand_cells(spec)
    assert len(cells) == 2 * 2 * 2 - 2
    assert cells[0].cell_id == "dataset=cifar10,head=mlp,head_hidden_dim=128"
    stl = [cell for cell in cells if cell.grid_values["dataset"] == "stl10"]
    assert all(cell.config_values["batch_size"] == 500 for cell in stl)
    assert all("batch_size" not in cell.config_values for cell in cells if cell not in stl)
    assert cells[-1].config_values["ae_checkpoint"] == "runs/ae-stl10-256"
    again = expand_cells(spec)  # ids are stable from one expansion to the next
    assert [cell.cell_id for cell in again] == [cell.cell_id for cell in cells]


def test_cell_id_is_a_safe_directory_name() -> None:
    assert cell_id({"data_dir": "/a b/c", "download": True}) == "data_dir=_a_b_c,download=true"
    assert cell_id({}) == "base"


def test_bad_template_and_reserved_keys_are_user_errors() -> None:
    with pytest.raises(UserError, match="nope"):
        expand_cells(parse_sweep({"base": {"ae_checkpoint": "x-{nope}"}, "grid": {"seed": [0]}}, default_name="t"))
    with pytest.raises(UserError, match="'out'"):
        parse_sweep({"base": {"out": "x"}}, default_name="t")
    with pytest.raises(UserError, match="unknown sweep key"):
        parse_sweep({"grdi": {}}, default_name="t")


def test_validation_names_the_cell_and_nothing_is_written(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = parse_sweep(
        {"base": TINY_BASE, "grid": {"head_out_dim": [16, 32], "optimizer": ["sgd", "bogus"]}},
        default_name="t",
    )
    with pytest.raises(UserError, match=r"head_out_dim=16,optimizer=bogus.*optimizer"):
        validate_cells(expand_cells(spec), tmp_path / "t")
    sweep = write_sweep(tmp_path / "bad.yaml", {"base": TINY_BASE, "grid": {"not_a_key": [1, 2]}})
    assert main(["sweep", str(sweep), "--out", str(tmp_path / "out")]) == 2
    assert "not_a_key=1" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


SEED_000_SWEEP = REPO / "src/simclr/recipes/sweeps/simclr-ae.yaml"


def test_dry_run_lists_the_seed_000_grid_of_720_cells(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["sweep", str(SEED_000_SWEEP), "--out", str(tmp_path), "--dry-run"])
    out = capsys.readouterr().out
    assert code == 0
    assert "720 cells, 0 finished" in out
    assert "dataset=stl10,head=ae,head_out_dim=64,head_hidden_dim=512,standardize=true,head_activation=tanh" in out
    assert not any(tmp_path.iterdir())
    cells = expand_cells(load_sweep(SEED_000_SWEEP))
    autoencoders = {cell.autoencoder.out for cell in cells if cell.autoencoder is not None}
    assert len(autoencoders) == 15  # 5 datasets x 3 embedding dims, each trained once for its 24 cells
    stl = next(cell for cell in cells if cell.grid_values["dataset"] == "stl10" and cell.autoencoder is not None)
    assert stl.config_values["batch_size"] == 500 and stl.autoencoder.values["image_size"] == 96


@pytest.mark.slow
def test_a_two_cell_slice_of_the_seed_000_grid_runs_end_to_end(cifar_small: Path, tmp_path: Path) -> None:
    """One ae cell (its autoencoder chained before it) and one mlp cell of the real grid, shrunk to a few steps
    on the CIFAR-10 subset: the grid's own settings, overrides and chaining, run as the sweep runs them."""
    spec = load_sweep(SEED_000_SWEEP)
    wanted = {"dataset": "cifar10", "head_out_dim": 32, "head_hidden_dim": 128, "standardize": True}
    picked = [
        cell
        for cell in expand_cells(spec)
        if all(cell.grid_values[key] == value for key, value in wanted.items())
        and cell.grid_values["head_activation"] == "sigmoid"
    ]
    assert [cell.grid_values["head"] for cell in picked] == ["ae", "mlp"]
    # 8 px, the cell's and its autoencoder's alike: a tenth of the compute of the grid's 32 px
    tiny = {"data_dir": str(cifar_small), "download": False, "weights": "none", "epochs": 1, "max_steps": 1,
            "batch_size": 32, "limit_train_images": 64, "knn_every_epochs": 0, "workers": 1,
            "image_size": 8}  # fmt: skip
    cells = []
    for cell in picked:
        values = {**cell.config_values, **tiny}
        autoencoder = cell.autoencoder
        if autoencoder is not None:
            values["ae_checkpoint"] = str(tmp_path / "ae-cifar10-128")
            small = {
                "data_dir": str(cifar_small),
                "epochs": 1,
                "limit_train_images": 64,
                "workers": 1,
                "image_size": 8,
            }
            autoencoder = AutoencoderJob(Path(values["ae_checkpoint"]), {**autoencoder.values, **small})
        cells.append(Cell(cell.cell_id, cell.grid_values, values, autoencoder))
    validate_cells(cells, tmp_path / "sweep")
    # the cells' evaluation is the tiny sweep's test; here the grid's pretraining and its chained autoencoder
    side_by_side = parse_devices("0,1")  # as on two GPUs; on the CPU only the time changes
    outcomes = SweepRunner(replace(spec, evaluate=False), tmp_path / "sweep", side_by_side, quiet=True).run(cells)
    assert [outcome.status for outcome in outcomes] == ["finished", "finished"], [o.error for o in outcomes]
    assert (tmp_path / "ae-cifar10-128" / "autoencoder.safetensors").is_file()
    rows = list(csv.DictReader((tmp_path / "sweep" / "results.csv").open()))
    assert [row["head"] for row in rows] == ["ae", "mlp"] and all(row["global_step"] == "1" for row in rows)
    config = yaml.safe_load((tmp_path / "sweep" / picked[0].cell_id / "config.yaml").read_text())
    assert config["standardize"] is True and len(config["normalization_mean"]) == 3


def _fake_launch(fail_cell: str, launched: list[str]) -> Any:
    """Stands in for the subprocesses: 'pretrain' writes a backbone file, unless the cell is ``fail_cell``."""

    def launch(command: list[str], log: Path, env: dict[str, str]) -> int:
        if command[3] != "pretrain":
            return 0
        run_dir = Path(yaml.safe_load(Path(command[command.index("--config") + 1]).read_text())["out"])
        launched.append(run_dir.name + (" --resume" if "--resume" in command else ""))
        if run_dir.name == fail_cell:
            return 1
        run_dir.mkdir(parents=True, exist_ok=True)
        header = json.dumps({"__metadata__": {"global_step": "7"}}).encode()
        (run_dir / "backbone.safetensors").write_bytes(len(header).to_bytes(8, "little") + header)
        return 0

    return launch


def test_a_failing_cell_is_reported_and_the_others_run(tmp_path: Path) -> None:
    spec = parse_sweep({"base": TINY_BASE, "grid": {"seed": [0, 1, 2]}, "evaluate": False}, default_name="t")
    cells = expand_cells(spec)
    launched: list[str] = []
    outcomes = SweepRunner(spec, tmp_path / "t", quiet=True, launch=_fake_launch("seed=1", launched)).run(cells)
    assert launched == ["seed=0", "seed=1", "seed=2"]
    assert [item.status for item in outcomes] == ["finished", "failed", "finished"]
    assert "pretrain exited with 1" in (outcomes[1].error or "")
    with (tmp_path / "t" / "results.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [row["status"] for row in rows] == ["finished", "failed", "finished"]
    assert rows[0]["global_step"] == "7"
    launched.clear()  # the re-run retries only the failed cell
    SweepRunner(spec, tmp_path / "t", quiet=True, launch=_fake_launch("", launched)).run(cells)
    assert launched == ["seed=1"]


def test_a_cell_with_a_checkpoint_is_resumed(tmp_path: Path) -> None:
    spec = parse_sweep({"base": TINY_BASE, "grid": {"seed": [0]}, "evaluate": False}, default_name="t")
    (tmp_path / "t" / "seed=0" / "checkpoints").mkdir(parents=True)
    (tmp_path / "t" / "seed=0" / "checkpoints" / "last.ckpt").write_bytes(b"")
    launched: list[str] = []
    outcomes = SweepRunner(spec, tmp_path / "t", quiet=True, launch=_fake_launch("", launched)).run(expand_cells(spec))
    assert launched == ["seed=0 --resume"] and outcomes[0].status == "finished"


def test_a_cell_another_process_trains_is_left_alone(tmp_path: Path) -> None:
    """Two sweeps over one folder: the cell a live process holds is neither cleared nor started again."""
    spec = parse_sweep({"base": TINY_BASE, "grid": {"seed": [0, 1]}, "evaluate": False}, default_name="t")
    busy = RunDir(tmp_path / "t" / "seed=0")
    busy.path.mkdir(parents=True)
    (busy.path / "partial.txt").write_text("being written")
    claim(busy.path)  # this test process stands for the other sweep's pretraining
    try:
        launched: list[str] = []
        outcomes = SweepRunner(spec, tmp_path / "t", quiet=True, launch=_fake_launch("", launched)).run(
            expand_cells(spec)
        )
    finally:
        release(busy.path)
    assert launched == ["seed=1"]
    assert outcomes[0].status == "failed" and "being trained by process" in (outcomes[0].error or "")
    assert (busy.path / "partial.txt").read_text() == "being written"


def test_a_sweep_folder_another_sweep_writes_is_refused(tmp_path: Path) -> None:
    """The sweep's folder is opened as every run-like directory is: one sweep writes its table at a time."""
    spec = parse_sweep({"base": TINY_BASE, "grid": {"seed": [0]}, "evaluate": False}, default_name="t")
    (tmp_path / "t").mkdir()
    claim(tmp_path / "t")  # this test process stands for the other sweep
    launched: list[str] = []
    try:
        runner = SweepRunner(spec, tmp_path / "t", quiet=True, launch=_fake_launch("", launched))
        with pytest.raises(UserError, match="is in use by process"):
            runner.run(expand_cells(spec))
    finally:
        release(tmp_path / "t")
    assert launched == [] and not (tmp_path / "t" / "results.csv").exists()
    outcomes = SweepRunner(spec, tmp_path / "t", quiet=True, launch=_fake_launch("", launched)).run(expand_cells(spec))
    assert launched == ["seed=0"] and outcomes[0].status == "finished"
    assert not RunDir(tmp_path / "t").lock.exists()


def test_devices_run_cells_in_parallel_one_per_device(tmp_path: Path) -> None:
    spec = parse_sweep({"base": TINY_BASE, "grid": {"seed": [0, 1, 2, 3]}, "evaluate": False}, default_name="t")
    busy: dict[str, int] = {}
    seen: list[tuple[str, int]] = []
    lock = threading.Lock()
    inner = _fake_launch("", [])

    def launch(command: list[str], log: Path, env: dict[str, str]) -> int:
        device = env["CUDA_VISIBLE_DEVICES"]
        with lock:
            busy[device] = busy.get(device, 0) + 1
            seen.append((device, busy[device]))
        time.sleep(0.05)
        with lock:
            busy[device] -= 1
        return int(inner(command, log, env))

    devices = parse_devices("0,1")
    outcomes = SweepRunner(spec, tmp_path / "t", devices, quiet=True, launch=launch).run(expand_cells(spec))
    assert [item.status for item in outcomes] == ["finished"] * 4
    assert {device for device, _ in seen} == {"0", "1"} and max(count for _, count in seen) == 1
    with pytest.raises(UserError, match="--devices"):
        parse_devices("0,x")


def test_base_config_starts_from_a_recipe(tmp_path: Path) -> None:
    (tmp_path / "recipe.yaml").write_text("backbone: resnet34\nbatch_size: 64\n")
    sweep = write_sweep(tmp_path / "s.yaml", {"base": {"config": "recipe.yaml", "batch_size": 8}})
    spec = load_sweep(sweep)
    assert spec.name == "s" and spec.base == {"backbone": "resnet34", "batch_size": 8}
    assert [cell.cell_id for cell in expand_cells(spec)] == ["base"]


@pytest.fixture(scope="module")
def tiny_sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real 2-cell Spirograph sweep (pretrain + evaluate subprocesses), the cells side by side as on two GPUs
    (CUDA_VISIBLE_DEVICES=0 and 1 change nothing on a CPU); returns OUT."""
    root = tmp_path_factory.mktemp("sweep")
    sweep = write_sweep(root / "tiny.yaml", {"base": TINY_BASE, "grid": {"head_out_dim": [16, 32]}})
    assert main(["sweep", str(sweep), "--out", str(root / "out"), "--devices", "0,1", "--quiet"]) == 0
    return root


@pytest.mark.slow
def test_two_cell_sweep_writes_results(tiny_sweep: Path) -> None:
    sweep_dir = tiny_sweep / "out" / "tiny"
    with (sweep_dir / "results.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [row["head_out_dim"] for row in rows] == ["16", "32"]
    for row in rows:
        assert row["status"] == "finished" and row["global_step"] == "2"
        assert float(row["final_loss"]) > 0 and float(row["regression_mse"]) >= 0 and row["regression_r2"]
    table = (sweep_dir / "results.md").read_text().splitlines()
    assert len(table) == 2 + 2 and "regression_mse" in table[0]
    marker = json.loads((sweep_dir / "head_out_dim=16" / SWEEP_MARKER_FILE).read_text())
    assert marker["grid_values"] == {"head_out_dim": 16}


@pytest.mark.slow
def test_rerun_skips_finished_cells_and_redoes_the_rest(
    tiny_sweep: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    shutil.copytree(tiny_sweep / "out", out)
    done, redo = out / "tiny" / "head_out_dim=16", out / "tiny" / "head_out_dim=32"
    stamp = (done / "backbone.safetensors").stat().st_mtime_ns
    redo_stamp = (redo / "backbone.safetensors").stat().st_mtime_ns
    (redo / SWEEP_MARKER_FILE).unlink()  # as if the sweep had died while evaluating this cell
    (redo / "eval" / "metrics.json").unlink()
    assert main(["sweep", str(tiny_sweep / "tiny.yaml"), "--out", str(out), "--dry-run"]) == 0
    listed = capsys.readouterr().out
    assert "head_out_dim=16  (finished)" in listed and "head_out_dim=32\n" in listed
    assert main(["sweep", str(tiny_sweep / "tiny.yaml"), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "[head_out_dim=16] skip (finished)" in printed and "[head_out_dim=32] done" in printed
    assert (done / "backbone.safetensors").stat().st_mtime_ns == stamp
    # pretraining was not redone, only the evaluation
    assert (redo / "backbone.safetensors").stat().st_mtime_ns == redo_stamp
    assert (redo / SWEEP_MARKER_FILE).is_file() and (redo / "eval" / "metrics.json").is_file()


# -- autoencoders chained before the ae-head cells ------------------------------------------------------
AE_SWEEP = {
    "base": {**TINY_BASE, "head": "ae", "ae_checkpoint": "{ae_root}/ae-{head_hidden_dim}"},
    "grid": {"head_hidden_dim": [16, 32], "head_activation": ["relu", "tanh"]},
    "autoencoders": {
        "when": {"head": "ae"},
        "set": {"dataset": "{dataset}", "latent_dim": "{head_hidden_dim}", "epochs": 1, "train_size": 64},
    },
}


def _ae_sweep(root: Path) -> Any:
    doc = json.loads(json.dumps(AE_SWEEP).replace("{ae_root}", str(root)))
    return parse_sweep(doc, default_name="ae")


def _fake_launch_with_autoencoders(launched: list[str]) -> Any:
    pretrain = _fake_launch("", launched)

    def launch(command: list[str], log: Path, env: dict[str, str]) -> int:
        if command[3] == "train-ae":
            out = Path(yaml.safe_load(Path(command[command.index("--config") + 1]).read_text())["out"])
            launched.append(f"train-ae {out.name}")
            out.mkdir(parents=True, exist_ok=True)
            (out / "config.yaml").write_text("{}")
            (out / "autoencoder.safetensors").write_bytes(b"weights")
            return 0
        return pretrain(command, log, env)

    return launch


def test_each_autoencoder_is_trained_once_before_the_cells_that_use_it(tmp_path: Path) -> None:
    spec = _ae_sweep(tmp_path / "ae")
    cells = expand_cells(spec)
    assert [cell.autoencoder.out.name for cell in cells if cell.autoencoder] == ["ae-16", "ae-16", "ae-32", "ae-32"]
    assert cells[0].autoencoder is not None and cells[0].autoencoder.values["latent_dim"] == 16  # typed, not "16"
    validate_cells(cells, tmp_path / "t")
    launched: list[str] = []
    outcomes = SweepRunner(spec, tmp_path / "t", quiet=True, launch=_fake_launch_with_autoencoders(launched)).run(cells)
    assert all(outcome.status == "finished" for outcome in outcomes)
    assert launched == [
        "train-ae ae-16",
        "head_hidden_dim=16,head_activation=relu",
        "head_hidden_dim=16,head_activation=tanh",
        "train-ae ae-32",
        "head_hidden_dim=32,head_activation=relu",
        "head_hidden_dim=32,head_activation=tanh",
    ]
    config = yaml.safe_load(next((tmp_path / "t" / "autoencoders").glob("*ae-16.yaml")).read_text())
    assert config["latent_dim"] == 16 and config["epochs"] == 1


def test_an_unfinished_autoencoder_is_trained_again_and_a_foreign_folder_is_left_alone(tmp_path: Path) -> None:
    spec = _ae_sweep(tmp_path / "ae")
    cells = expand_cells(spec)
    unfinished, foreign = tmp_path / "ae" / "ae-16", tmp_path / "ae" / "ae-32"
    unfinished.mkdir(parents=True)
    (unfinished / "config.yaml").write_text("{}")
    (unfinished / "metrics.csv").write_text("epoch\n0\n")  # killed before its weights were written
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    launched: list[str] = []
    outcomes = SweepRunner(spec, tmp_path / "t", quiet=True, launch=_fake_launch_with_autoencoders(launched)).run(cells)
    assert launched[0] == "train-ae ae-16" and "train-ae ae-32" not in launched
    assert not (unfinished / "metrics.csv").exists() and (unfinished / "autoencoder.safetensors").is_file()
    failed = [outcome for outcome in outcomes if outcome.error]
    assert len(failed) == 2 and all("is not a train-ae run" in (outcome.error or "") for outcome in failed)
    assert (foreign / "notes.txt").read_text() == "mine"
