"""Names and output paths (issue 26): names longer than the file system holds, an output that is a folder or lies
under a file, a folder this user may not write into. Each is one line naming the path and the fix, exit code 2,
before any work, and whatever was already there is left as it was."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from simclr.cli import main
from simclr.config import build_config
from simclr.errors import UserError
from simclr.models.backbone_file import BackboneMetadata, write_backbone
from simclr.models.backbones import build_backbone
from simclr.paths import ROOM_FOR_TEMPORARIES, check_output_file, check_path_names, name_limits
from simclr.settings import config_to_yaml

LONG = "a" * 300


def files_under(folder: Path) -> dict[str, bytes | None]:
    """Every path under ``folder`` with its content (None for a folder)."""
    return {str(p.relative_to(folder)): None if p.is_dir() else p.read_bytes() for p in sorted(folder.rglob("*"))}


def refused(argv: list[str], capsys: pytest.CaptureFixture[str], root: Path) -> str:
    """Run the CLI; it must exit 2 with one line and leave everything under ``root`` as it was."""
    before = files_under(root)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("simclr: error: ") and "\n" not in err and "Traceback" not in err, err
    assert files_under(root) == before
    return err


@pytest.fixture
def run(tmp_path: Path) -> Path:
    """A run directory (config and backbone, no data: every check here comes before the data is read)."""
    folder = tmp_path / "run"
    folder.mkdir()
    config = build_config({"dataset": "cifar10", "data_dir": str(tmp_path / "no-data"), "out": str(folder)}, {})
    (folder / "config.yaml").write_text(config_to_yaml(config))
    torch.manual_seed(0)
    module, feature_dim = build_backbone("resnet18", "cifar")
    meta = BackboneMetadata(
        backbone="resnet18", stem="cifar", feature_dim=feature_dim, dataset="cifar10", image_size=32
    )
    write_backbone(folder / "backbone.safetensors", module.state_dict(), meta)
    return folder


@pytest.mark.parametrize(
    ("argv", "setting"),
    [
        (["pretrain", "--dataset", "spirograph", "--out", "TMP/LONG"], "out has a name of 300 bytes"),
        (["pretrain", "--config", "TMP/LONG.yaml"], "config has a name of 305 bytes"),
        (["pretrain", "--dataset", "imagefolder", "--data-dir", "TMP/LONG"], "data_dir has a name of 300 bytes"),
        (["embed", "RUN", "--data-dir", "TMP", "--out", "TMP/LONG.npy"], "out has a name of 304 bytes"),
        (["evaluate", "TMP/LONG"], "run has a name of 300 bytes"),
        (["evaluate", "RUN", "--eval-dir", "TMP/LONG/eval"], "eval_dir has a name of 300 bytes"),
        (["report", "RUN", "--out", "TMP/LONG.html"], "out has a name of 305 bytes"),
    ],
)
def test_a_name_longer_than_the_file_system_holds_is_one_line(
    argv: list[str], setting: str, run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [a.replace("TMP", str(tmp_path)).replace("LONG", LONG).replace("RUN", str(run)) for a in argv]
    err = refused(args, capsys, tmp_path)
    assert setting in err and "more than the 255 a file name may have on this file system" in err
    assert "with a shorter name" in err


def test_an_output_name_leaves_room_for_the_temporary_it_is_written_through(tmp_path: Path) -> None:
    name_max, _ = name_limits(tmp_path)
    fits = "r" * (name_max - ROOM_FOR_TEMPORARIES)
    check_output_file(tmp_path / fits, overwrite=False)
    (tmp_path / f".{fits}.tmp-{2**22}").write_text("")  # the longest temporary simclr.atomic makes
    with pytest.raises(UserError, match="less room for the temporary it is written through"):
        check_output_file(tmp_path / (fits + "r"), overwrite=False)
    check_path_names(str(tmp_path / (fits + "r")), "data_dir", "fix --data-dir")  # a name read, not written


def test_report_out_onto_a_folder_or_under_a_file_is_refused(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "reports"
    folder.mkdir()
    (folder / "kept.html").write_text("an earlier report")
    err = refused(["report", str(run), "--out", str(folder)], capsys, tmp_path)
    assert err == f"simclr: error: cannot write {folder}: it is a folder; choose another --out"
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine")
    err = refused(["report", str(run), "--out", str(a_file / "report.html")], capsys, tmp_path)
    assert f"cannot write {a_file / 'report.html'}: {a_file} is a file, not a folder; choose another --out" in err


def test_data_split_does_not_overwrite_a_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "splits"
    folder.mkdir()
    (folder / "c10-800.json").write_text("{}")
    for extra in ([], ["--overwrite"]):
        argv = ["data", "split", "cifar10", str(folder), "--labelled-per-class", "3", *extra]
        err = refused([*argv, "--data-dir", str(tmp_path / "no-data")], capsys, tmp_path)
        assert f"cannot write {folder}: it is a folder (--overwrite replaces files only)" in err


def test_export_and_import_refuse_an_output_that_is_a_folder_or_under_a_file(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "exported"
    folder.mkdir()
    err = refused(["export", str(run), "--format", "state_dict", "--out", str(folder)], capsys, tmp_path)
    assert f"cannot write {folder}: it is a folder" in err
    source = tmp_path / "weights.pth"
    torch.save(build_backbone("resnet18", "imagenet")[0].state_dict(), source)
    out = source / "backbone.safetensors"  # "under" the checkpoint file
    err = refused(["import-weights", str(source), str(out), "--backbone", "resnet18"], capsys, tmp_path)
    assert f"{source} is a file, not a folder" in err


def test_evaluation_on_a_run_it_may_not_write_to_is_refused_before_any_work(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """As root every folder is writable, so the refusal is shown with the permission the OS reports
    (``os.access``) taken away from the run directory; the real thing, as another user, is below."""
    real_access = os.access

    def no_write_in_run(path: object, mode: int, **kwargs: object) -> bool:
        inside = Path(os.fspath(path)).resolve().is_relative_to(run.resolve())  # type: ignore[arg-type]
        return False if inside and mode & os.W_OK else real_access(path, mode, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "access", no_write_in_run)
    for command in (["evaluate", str(run)], ["knn", str(run)], ["linear-eval", str(run)]):
        err = refused(command, capsys, tmp_path)
        assert err == (
            f"simclr: error: cannot write into {run}: permission denied; choose a folder you may write to with "
            "--eval-dir"
        )
    # the fix the message names works: results elsewhere (here the evaluation goes on to the missing data)
    err = refused(["knn", str(run), "--eval-dir", str(tmp_path / "elsewhere")], capsys, tmp_path)
    assert "permission denied" not in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into a folder of mode 0555: shown above with os.access")
def test_evaluation_on_a_read_only_run_directory(run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run.chmod(0o555)
    try:
        err = refused(["evaluate", str(run)], capsys, tmp_path)
        assert f"cannot write into {run}: permission denied" in err
    finally:
        run.chmod(0o755)
