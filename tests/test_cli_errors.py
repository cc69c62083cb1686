"""Every user error ends with exit code 2, one line naming the problem and the fix, no traceback,
and nothing written to disk."""

import subprocess
import sys
from pathlib import Path

import pytest

from simclr.cli import main


def run_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> str:
    monkeypatch.chdir(tmp_path)
    before = sorted(p for p in tmp_path.rglob("*"))
    code = main(["pretrain", *args])
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("simclr: error: ")
    assert "Traceback" not in err
    assert sorted(p for p in tmp_path.rglob("*")) == before, "an error must not write files"
    return lines[0]


def test_unknown_dataset(tmp_path, monkeypatch, capsys):
    line = run_in(tmp_path, monkeypatch, capsys, "--dataset", "imagenet22k")
    assert "unknown dataset 'imagenet22k'" in line and "cifar10" in line


def test_unknown_backbone(tmp_path, monkeypatch, capsys):
    line = run_in(tmp_path, monkeypatch, capsys, "--backbone", "vgg16")
    assert "unknown backbone 'vgg16'" in line and "resnet18" in line


def test_missing_data_dir(tmp_path, monkeypatch, capsys):
    line = run_in(tmp_path, monkeypatch, capsys, "--dataset", "imagefolder", "--data-dir", str(tmp_path / "nope"))
    assert "nope" in line


def test_empty_data_dir(tmp_path, monkeypatch, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    line = run_in(tmp_path, monkeypatch, capsys, "--dataset", "imagefolder", "--data-dir", str(empty))
    assert "empty" in line


def test_dataset_that_needs_download(tmp_path, monkeypatch, capsys):
    line = run_in(tmp_path, monkeypatch, capsys, "--dataset", "cifar100", "--data-dir", str(tmp_path))
    assert "--download" in line


def test_batch_size_one(tmp_path, monkeypatch, capsys):
    line = run_in(tmp_path, monkeypatch, capsys, "--batch-size", "1")
    assert "batch_size must be >= 2 (NT-Xent needs other images as negatives), got 1; fix --batch-size" in line


@pytest.mark.parametrize("value", ["0", "-0.5"])
def test_temperature_not_positive(tmp_path, monkeypatch, capsys, value):
    assert "temperature must be > 0" in run_in(tmp_path, monkeypatch, capsys, "--temperature", value)


def test_one_view(tmp_path, monkeypatch, capsys):
    assert "n_views must be >= 2" in run_in(tmp_path, monkeypatch, capsys, "--n-views", "1")


def test_unknown_config_key(tmp_path, monkeypatch, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("temprature: 0.5\n")
    assert "unknown config key 'temprature'" in run_in(tmp_path, monkeypatch, capsys, "--config", str(recipe))


def test_corrupt_yaml(tmp_path, monkeypatch, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("epochs: [1\n")
    assert "not valid YAML" in run_in(tmp_path, monkeypatch, capsys, "--config", str(recipe))


def test_resume_of_a_folder_without_a_run(tmp_path, monkeypatch, capsys):
    # a run directory with a config and no checkpoint is started again from scratch (tests/training/test_preemption.py)
    run = tmp_path / "run"
    run.mkdir()
    line = run_in(tmp_path, monkeypatch, capsys, "--resume", str(run))
    assert "has no config.yaml; pass the directory of a simclr run" in line


def test_unknown_flag(tmp_path, monkeypatch, capsys):
    assert "--bogus" in run_in(tmp_path, monkeypatch, capsys, "--bogus", "1")


def test_console_process_exit_code_and_no_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "simclr", "pretrain", "--dataset", "nope"], capture_output=True, text=True, cwd=tmp_path
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_an_argument_with_a_line_break_is_shown_escaped_in_one_line(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path / "no-run"), "\n", "nan"]) == 2  # found by tests/test_fuzz_readers.py
    err = capsys.readouterr().err
    assert err == "simclr: error: unrecognized arguments: \\n nan; see 'simclr --help'\n"
