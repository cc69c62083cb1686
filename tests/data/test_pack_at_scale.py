"""Packing as a cluster meets it: a pack keyed by what it holds (a changed folder is packed again, a pack of
other content is refused), one packer at a time (racing packers wait, a killed packer's lock is taken over and
its pack finished), and a pack stopped by a signal to its whole process group ends in one line and is finished
by the same command."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from litdata import StreamingDataset
from PIL import Image

from simclr.cli import main
from simclr.data import packed
from simclr.data.cache_folder import CACHE_ENV
from simclr.data.pack_cache import automatic_pack
from simclr.data.pack_format import PACK_LOCK, read_pack_info
from simclr.data.pack_settings import PackConfig
from simclr.data.pack_workers import interrupted_on_signals
from simclr.data.packed import pack_dataset
from simclr.data.source import DataSource
from simclr.errors import Interrupted, UserError
from simclr.process_lock import read_lock

from ..conftest import alive_in_session, noise_pngs

# a packer in a process of its own, as a rank of torchrun or a second run is: many small parts, so that it can
# be stopped between them
PACKER = textwrap.dedent(
    """
    import logging, sys
    from pathlib import Path
    from simclr.data import packed
    from simclr.data.pack_cache import automatic_pack
    from simclr.data.pack_settings import PackConfig

    packed.PART_SIZE = 4
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    folder = Path(sys.argv[1])
    print("packed into", automatic_pack(str(folder.resolve()), folder, None, PackConfig(workers=int(sys.argv[2]))))
    """
)
# the command line, with the same small parts
PACK_COMMAND = "import sys; from simclr.data import packed; packed.PART_SIZE = 4; from simclr.cli import main; "
PACK_COMMAND += "sys.exit(main(sys.argv[1:]))"


def photos(root: Path, count: int, classes: tuple[str, ...] = ("cats", "dogs")) -> Path:
    """``count`` smooth 768 px JPEGs (about 15 ms each to pack: downscaled to 512 and encoded again)."""
    rng = np.random.default_rng(0)
    for i in range(count):
        path = root / classes[i % len(classes)] / f"{i:03d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        small = Image.fromarray(rng.integers(0, 255, (24, 24, 3), dtype=np.uint8))
        small.resize((768, 768), Image.Resampling.BILINEAR).save(path, quality=85)
    return root


tiny = partial(noise_pngs, classes=("a", "b"), size=8)  # 8 px PNGs in class folders a/ and b/


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


def start_packer(folder: Path, cache: Path, workers: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", PACKER, str(folder), str(workers)],
        env=dict(os.environ, **{CACHE_ENV: str(cache)}, OMP_NUM_THREADS="1"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def wait_for(found: object, what: str, proc: subprocess.Popen[str], timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while not found() and time.time() < deadline:  # type: ignore[operator]
        if proc.poll() is not None:
            pytest.fail(f"the packer ended before {what}: {proc.communicate()[0]}")
        time.sleep(0.01)
    assert found(), f"timed out waiting for {what}"  # type: ignore[operator]


def stored_names(split_dir: Path) -> list[str]:
    dataset = StreamingDataset(str(split_dir))
    return sorted(bytes(dataset[i]["path"]).decode() for i in range(len(dataset)))


def test_two_packers_racing_on_one_cache_entry_pack_it_once(
    tmp_path: Path, cache: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = photos(tmp_path / "photos", 64)
    first = start_packer(folder, cache, workers=1)
    try:
        wait_for(lambda: list(cache.glob(f"packed/*/{PACK_LOCK}")), "its lock", first)
        monkeypatch.setattr(packed, "PART_SIZE", 4)
        with caplog.at_level(logging.INFO, logger="simclr"):
            second = automatic_pack(str(folder.resolve()), folder, None, PackConfig(workers=1))
        output = first.communicate(timeout=120)[0]
    finally:
        first.kill()
        first.wait()
    assert first.returncode == 0, output
    assert f"packed into {second}" in output  # one cache entry
    assert f"waiting for process {first.pid} on " in caplog.text  # the second waited for the first
    assert "packed earlier from the same files: kept" in caplog.text  # and found its pack, packed once
    assert "kept" not in output and "taking over" not in caplog.text
    assert stored_names(second / "train") == sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.jpg"))
    assert not (second / PACK_LOCK).exists()


def test_a_killed_packers_lock_is_taken_over_and_its_pack_finished(
    tmp_path: Path, cache: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = photos(tmp_path / "photos", 64)
    killed = start_packer(folder, cache, workers=2)
    try:
        wait_for(lambda: list(cache.glob("packed/*/train/.parts/[0-9]*.json")), "a finished part", killed)
        os.killpg(killed.pid, signal.SIGKILL)  # the packer and its workers, as a lost node or an OOM kill would
    finally:
        killed.kill()
        killed.wait()
    (entry,) = cache.glob("packed/*")
    assert read_lock(entry / PACK_LOCK)["pid"] == killed.pid  # left behind by the killed packer
    monkeypatch.setattr(packed, "PART_SIZE", 4)
    with caplog.at_level(logging.INFO, logger="simclr"):
        assert automatic_pack(str(folder.resolve()), folder, None, PackConfig(workers=1)) == entry
    assert f"process {killed.pid} on " in caplog.text and "ended before finishing; taking over" in caplog.text
    assert "part(s) kept from an earlier run" in caplog.text  # finished, not restarted
    assert stored_names(entry / "train") == sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.jpg"))
    assert not (entry / PACK_LOCK).exists() and not (entry / "train" / ".parts").exists()


def test_a_changed_folder_is_packed_again_and_streamed_with_its_new_images_and_classes(
    tmp_path: Path, cache: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tiny(tmp_path / "folder", 24)
    source = DataSource("imagefolder", folder, workers=1)
    with caplog.at_level(logging.INFO, logger="simclr"):
        before = source.streamed(None, memory_budget=1)
        assert before is not None and before.train.info.images == 24
        assert before.train.class_names == ["a", "b"]
        caplog.clear()
        again = source.streamed(None, memory_budget=1)  # nothing changed: the same pack, not packed again
        assert again is not None and again.train.path == before.train.path
        assert "packed earlier from the same files" in caplog.text and "packing" not in caplog.text

        tiny(folder, 4, classes=("a",), seed=1)  # 4 more images
        (folder / "b").rename(folder / "c")  # and a class renamed
        caplog.clear()
        after = source.streamed(None, memory_budget=1)
    assert after is not None and after.train.path != before.train.path
    assert after.train.info.images == 28 and after.train.class_names == ["a", "c"]
    assert sorted(after.train.labels.tolist()) == [0] * 16 + [1] * 12
    assert f"changed since it was packed into {Path(before.train.path).parent}" in caplog.text
    assert Path(before.train.path).is_dir()  # left for runs that may still stream from it


def test_a_changed_folder_replaces_its_pack_in_the_pack_dir(
    tmp_path: Path, cache: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tiny(tmp_path / "folder", 24)
    pack_dir = tmp_path / "pack-dir"
    source = DataSource("imagefolder", folder, workers=1)
    assert source.streamed(None, memory_budget=1, pack_dir=pack_dir) is not None
    tiny(folder, 6, seed=2)
    with caplog.at_level(logging.INFO, logger="simclr"):
        after = source.streamed(None, memory_budget=1, pack_dir=pack_dir)
    assert after is not None and Path(after.train.path) == pack_dir / "train" and after.train.info.images == 30
    assert "holds a pack of 24 images of" in caplog.text and "packing it again" in caplog.text
    assert not cache.exists()  # --pack-dir: nothing in the cache


def test_data_pack_over_a_pack_of_other_content_is_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tiny(tmp_path / "folder", 12)
    out = tmp_path / "packed"
    assert main(["data", "pack", str(folder), str(out), "--workers", "1"]) == 0
    before = {p.name: p.stat().st_mtime_ns for p in (out / "train").iterdir()}
    tiny(folder, 2, seed=3)
    capsys.readouterr()
    assert main(["data", "pack", str(folder), str(out), "--workers", "1"]) == 2
    err = capsys.readouterr().err
    assert "holds a pack of 12 images of" in err and "choose another OUT, or delete" in err
    assert err.count("\n") == 1
    assert {p.name: p.stat().st_mtime_ns for p in (out / "train").iterdir()} == before  # untouched
    assert not (out / PACK_LOCK).exists()


def test_an_unfinished_pack_is_finished_only_for_the_same_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tiny(tmp_path / "folder", 20)
    monkeypatch.setattr(packed, "PART_SIZE", 5)
    real_pack_part = packed._pack_part

    def dies_at_part_2(part: int) -> packed._PartResult:
        if part == 2:
            raise KeyboardInterrupt("stopped while packing part 2")
        return real_pack_part(part)

    monkeypatch.setattr(packed, "_pack_part", dies_at_part_2)
    with pytest.raises(KeyboardInterrupt):
        pack_dataset(str(folder), tmp_path / "packed", PackConfig(workers=1))
    monkeypatch.setattr(packed, "_pack_part", real_pack_part)
    shutil.copy(next(folder.rglob("*.png")), folder / "a" / "extra.png")
    with pytest.raises(UserError, match="holds an unfinished pack of .*, not what .* holds now"):
        pack_dataset(str(folder), tmp_path / "packed", PackConfig(workers=1))
    (folder / "a" / "extra.png").unlink()
    summary = pack_dataset(str(folder), tmp_path / "packed", PackConfig(workers=1))["train"]
    assert summary.resumed_parts == 2 and summary.images == 20
    assert read_pack_info(tmp_path / "packed" / "train").fingerprint


def test_data_pack_stopped_by_sigterm_to_its_process_group_ends_in_one_line_and_the_same_command_finishes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = photos(tmp_path / "photos", 64)
    out = tmp_path / "packed"
    args = ["data", "pack", str(folder), str(out), "--workers", "2"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(
        [sys.executable, "-c", PACK_COMMAND, *args], env=env, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        wait_for(lambda: list((out / "train" / ".parts").glob("[0-9]*.json")), "a finished part", proc)
        os.killpg(proc.pid, signal.SIGTERM)  # the packer and its two workers, as SLURM's --signal would
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 143, err
    assert err.strip().splitlines()[-1] == "simclr: packing stopped by SIGTERM; run the same command again to finish it"
    assert "Traceback" not in err
    deadline = time.time() + 10
    while alive_in_session(proc.pid) and time.time() < deadline:
        time.sleep(0.05)
    assert not alive_in_session(proc.pid), "the workers ended with their parent"
    assert not (out / "train" / "index.json").exists() and not (out / PACK_LOCK).exists()

    monkeypatch.setattr(packed, "PART_SIZE", 4)  # as the stopped command had
    capsys.readouterr()
    assert main(args) == 0  # the same command
    assert "part(s) kept from an earlier run" in capsys.readouterr().out
    assert stored_names(out / "train") == sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.jpg"))


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_while_packing_is_an_interruption_with_the_signals_exit_code(signum: int, code: int) -> None:
    before = signal.getsignal(signum)
    with pytest.raises(Interrupted) as stopped, interrupted_on_signals("packing"):
        os.kill(os.getpid(), signum)
        time.sleep(5)  # the handler raises before this ends
    assert stopped.value.exit_code == code
    name = signal.Signals(signum).name
    assert str(stopped.value) == f"packing stopped by {name}; run the same command again to finish it"
    assert signal.getsignal(signum) == before  # restored
