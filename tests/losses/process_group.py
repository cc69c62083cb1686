"""What the spawned processes of the distributed loss tests share: joining a gloo group of ``world`` processes
on the CPU, and averaging parameter gradients over it as DistributedDataParallel does.

The tests hand their worker functions to ``torch.multiprocessing.spawn``, which pickles them by module name;
under pytest's ``--import-mode=importlib`` that name is ``tests.losses.<module>``, which the child imports
from the repository root (on its ``sys.path``, inherited from ``python -m pytest``). This module is imported
the same way, by that absolute name, in the test process and in the children.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import timedelta

import torch
import torch.distributed as dist


@contextmanager
def gloo_group(rank: int, world: int, init_file: str) -> Iterator[None]:
    """This process as ``rank`` of ``world`` gloo processes that meet through ``init_file``, one thread each
    (the processes share the test machine's cores); the group is destroyed on the way out."""
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=world, timeout=timedelta(seconds=60)
    )
    try:
        yield
    finally:
        dist.destroy_process_group()


def averaged_gradients(parameters: Iterable[torch.Tensor]) -> list[torch.Tensor]:
    """The gradients of ``parameters`` averaged over the group's processes (what DistributedDataParallel's
    all-reduce leaves on every process), as new tensors: the parameters' own ``.grad`` stay this process's."""
    averaged = []
    for parameter in parameters:
        assert parameter.grad is not None, "every parameter takes part in the loss"
        grad = parameter.grad.clone()
        dist.all_reduce(grad)  # a sum over the processes
        averaged.append(grad / dist.get_world_size())
    return averaged
