"""Decoding many image files at once, straight into one preallocated ``(N, 3, H, W) uint8`` tensor.

With ``workers > 0`` the files are decoded by that many forked processes sharing the output mapping
(threads where fork is not available); every image is written into its slot, nothing is gathered or
stacked afterwards. Files that cannot be decoded are skipped and returned with their reason.
"""

from __future__ import annotations

import mmap
import multiprocessing as mp
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor

import numpy as np
import torch

from simclr.data.decode import ImageDecodeError, load_image
from simclr.data.store import printable_name
from simclr.errors import UserError
from simclr.hardware import usable_cpus, worker_processes
from simclr.stop_signals import ignore_stop_signals, starting_helpers

__all__ = ["MixedSizesError", "decode_files"]


def _num_workers(workers: int) -> int:
    if workers < 0:
        return usable_cpus()
    return worker_processes(workers)


def _default_pool() -> str:
    # Forked processes share the anonymous output mapping and avoid the GIL, which is contended
    # when the per-image Python work (open, header parsing) is as large as the decode itself.
    # Daemonic processes (e.g. DataLoader workers) may not have children.
    if sys.platform.startswith("linux") and "fork" in mp.get_all_start_methods() and not mp.current_process().daemon:
        return "process"
    return "thread"


class MixedSizesError(UserError):
    """Images of different sizes met while decoding at the native size (``image_size=None``)."""

    def __init__(self, message: str, sizes: tuple[tuple[int, int], tuple[int, int]]) -> None:
        super().__init__(message)
        self.sizes = sizes  # (width, height) of the first image and of the one that differs


# (paths, image_size, crop_bottom, resize mode, target array, height, width); set in forked workers.
_DecodeState = tuple[list[str], int | None, int, str, np.ndarray, int, int]
_WORKER_STATE: _DecodeState | None = None
# what a worker returns for a range: decoded indices, errors, the first size mismatch (index, height, width)
_RangeResult = tuple[list[int], dict[int, str], tuple[int, int, int] | None]


def _decode_range(state: _DecodeState, lo: int, hi: int) -> _RangeResult:
    """Decode ``lo..hi-1`` into ``target``; returns decoded indices, errors and the first size
    mismatch ``(index, height, width)`` (after which it stops)."""
    paths, image_size, crop_bottom, resize, target, h, w = state
    done: list[int] = []
    errors: dict[int, str] = {}
    for i in range(lo, hi):
        try:
            arr = load_image(paths[i], image_size, crop_bottom, resize)
        except ImageDecodeError as e:
            errors[i] = e.reason
            continue
        if arr.shape[0] != h or arr.shape[1] != w:
            return done, errors, (i, arr.shape[0], arr.shape[1])
        target[i] = arr.transpose(2, 0, 1)
        done.append(i)
    return done, errors, None


def _init_worker(state: _DecodeState) -> None:
    global _WORKER_STATE
    _WORKER_STATE = state
    ignore_stop_signals()  # a signal to the process group stops the parent, which ends the pool


def _worker_range(lo: int, hi: int) -> _RangeResult:
    assert _WORKER_STATE is not None
    return _decode_range(_WORKER_STATE, lo, hi)


def decode_files(
    paths: Sequence[str | os.PathLike[str]],
    image_size: int | None = None,
    workers: int = 0,
    crop_bottom: int = 0,
    names: Sequence[str] | None = None,
    where: str | os.PathLike[str] = "the dataset",
    pool: str = "auto",
    resize: str = "crop",
    progress: Callable[[int, int], None] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, list[tuple[str, str]]]:
    """Decode ``paths`` into one ``(N_ok, 3, H, W) uint8`` tensor.

    Returns ``(images, ok_indices, skipped)``: ``ok_indices`` are the positions in ``paths`` that
    decoded, ``skipped`` lists ``(name, reason)`` for the others (``names`` defaults to the paths).
    With ``image_size=None`` every image must have the size of the first one, else a
    :class:`UserError` asks for ``--image-size`` (:func:`~simclr.data.imagefolder.load_image_folder`
    picks one instead).

    ``workers > 0`` decodes in parallel (``-1``: one per CPU) with ``pool`` = ``"process"``
    (forked processes writing into one shared anonymous mapping; the default on Linux) or
    ``"thread"`` (the default elsewhere). Either way every image is written straight into its
    slot of the preallocated output; nothing is gathered or stacked afterwards. ``progress(done, total)`` is
    told how many files are done as each range of them is.
    """
    if image_size is not None and image_size <= 0:
        raise UserError(f"image size must be positive, got {image_size}; pass e.g. --image-size 64")
    if pool not in ("auto", "process", "thread"):
        raise ValueError(f"pool must be 'auto', 'process' or 'thread', got {pool!r}")
    path_strs: list[str] = [str(os.fspath(p)) for p in paths]
    shown: list[str] = [str(x) for x in names] if names is not None else list(path_strs)
    n = len(path_strs)
    # The first decodable image fixes the shape when no image_size is given.
    first, arr0, errors = _decode_first(path_strs, image_size, crop_bottom, resize)
    if arr0 is None:
        return (
            torch.empty((0, 3, image_size or 0, image_size or 0), dtype=torch.uint8),
            torch.empty(0, dtype=torch.int64),
            [(shown[i], errors[i]) for i in range(n)],
        )
    h, w = arr0.shape[:2]
    rest = n - first
    nw = min(_num_workers(workers), max(1, rest // 32))
    use_processes = nw > 1 and (_default_pool() if pool == "auto" else pool) == "process"
    images, target = _output(n, h, w, shared=use_processes)
    target[first - 1] = arr0.transpose(2, 0, 1)
    ok = np.zeros(n, dtype=bool)
    ok[first - 1] = True

    state: _DecodeState = (path_strs, image_size, crop_bottom, resize, target, h, w)
    chunk = max(16, min(1024, -(-rest // (4 * nw)))) if nw > 1 else max(rest, 1)
    ranges = [(lo, min(lo + chunk, n)) for lo in range(first, n, chunk)]
    for done, errs, mismatch in _decode_ranges(state, ranges, nw, use_processes, progress):
        if mismatch is not None:
            i, mh, mw = mismatch
            raise MixedSizesError(
                f"images in {printable_name(str(where))} have different sizes ({w}x{h} in "
                f"{printable_name(shown[first - 1])}, {mw}x{mh} in {printable_name(shown[i])}); pass --image-size N "
                "to resize and centre-crop them to N x N",
                ((w, h), (mw, mh)),
            )
        ok[done] = True
        errors.update(errs)
    ok_idx = torch.from_numpy(np.flatnonzero(ok)).to(torch.int64)
    if ok_idx.numel() != n:
        images = images.index_select(0, ok_idx)
    skipped = [(shown[i], errors[i]) for i in sorted(errors)]
    return images, ok_idx, skipped


def _decode_first(
    paths: list[str], image_size: int | None, crop_bottom: int, resize: str
) -> tuple[int, np.ndarray | None, dict[int, str]]:
    """``(position after it, pixels, errors before it)`` of the first file that decodes (pixels None: none)."""
    errors: dict[int, str] = {}
    for index, path in enumerate(paths):
        try:
            return index + 1, load_image(path, image_size, crop_bottom, resize), errors
        except ImageDecodeError as e:
            errors[index] = e.reason
    return len(paths), None, errors


def _output(n: int, h: int, w: int, *, shared: bool) -> tuple[torch.Tensor, np.ndarray]:
    """The output tensor and the array view the decoders write into; ``shared`` for forked workers."""
    if shared:
        # MAP_SHARED | MAP_ANONYMOUS: inherited by forked workers, not limited by /dev/shm.
        target = np.frombuffer(mmap.mmap(-1, n * 3 * h * w), dtype=np.uint8).reshape(n, 3, h, w)
        return torch.from_numpy(target), target
    images = torch.empty((n, 3, h, w), dtype=torch.uint8)
    return images, images.numpy()  # the array shares memory with `images`


def _decode_ranges(
    state: _DecodeState,
    ranges: list[tuple[int, int]],
    workers: int,
    use_processes: bool,
    progress: Callable[[int, int], None] | None = None,
) -> list[_RangeResult]:
    """Every range's result, in this process (``workers`` <= 1) or a pool, stopping at a size mismatch;
    ``progress(files done, files)`` as each range is done."""
    total = len(state[0])
    results: list[_RangeResult] = []

    def finished(result: _RangeResult, hi: int) -> None:
        results.append(result)
        if progress is not None:
            progress(hi, total)  # ranges finish in order here: every file before ``hi`` is done

    if workers <= 1:
        for lo, hi in ranges:
            finished(_decode_range(state, lo, hi), hi)
            if results[-1][2] is not None:
                break
        return results
    executor: Executor
    if use_processes:
        executor = ProcessPoolExecutor(
            max_workers=workers, mp_context=mp.get_context("fork"), initializer=_init_worker, initargs=(state,)
        )
    else:
        executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="simclr-decode")
    with executor, warnings.catch_warnings():
        # Python >= 3.12 warns about fork() in a multi-threaded process; the workers only run
        # PIL and NumPy code, never the parent's thread pools.
        warnings.filterwarnings("ignore", message=".*fork", category=DeprecationWarning)
        with starting_helpers():  # the pool's processes start with the first submission
            if use_processes:
                futures = [executor.submit(_worker_range, lo, hi) for lo, hi in ranges]
            else:
                futures = [executor.submit(_decode_range, state, lo, hi) for lo, hi in ranges]
        try:
            for f, (_, hi) in zip(futures, ranges, strict=True):
                finished(f.result(), hi)
                if results[-1][2] is not None:  # size mismatch: stop early
                    break
        finally:  # also on a stop signal: leaving the block waits for the ranges already running, not for all
            for g in futures:
                g.cancel()
    return results
