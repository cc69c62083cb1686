"""Data-parallel training on 2 CPU processes (gloo): one DDP step equals one single-process step on the
concatenated batch, and a DDP run interrupted mid-training resumes onto the uninterrupted loss curve.

How the DDP step is driven, and why
-----------------------------------
The step runs through a real ``lightning.Trainer(strategy=DDPStrategy(start_method="spawn"),
accelerator="cpu", devices=2, max_steps=1)`` (its processes meet through a file, see
:class:`FileRendezvousDDP`) fitting the real :class:`SimCLRModule` (``training_step``
with ``view_generator(seed, step, rank)``, NT-Xent with ``gather_distributed``, SGD and the warmup-cosine
schedule of :func:`plan_optimisation`, ResNet-18 with the CIFAR stem from :func:`build_seeded_model`) on
the run's own :class:`InMemoryDataModule`, which gives rank r the r-th block of the global batch.
``ddp_spawn`` rather than ``ddp``: the ``ddp`` launcher starts the other rank by re-running the command
line, which under pytest would re-run pytest (the CLI test below uses the real ``--strategy ddp``).

BatchNorm is synchronised through Lightning's ``LayerSync`` plugin, the mechanism behind
``Trainer(sync_batchnorm=True)``, with :class:`CPUSyncBatchNorm` below in place of
``torch.nn.SyncBatchNorm``: torch's SyncBatchNorm cannot run on the CPU at all
(``DistributedDataParallel`` rejects it with "SyncBatchNorm layers only work with GPU modules", and its
kernel ``aten::batch_norm_stats`` has no CPU implementation). :class:`CPUSyncBatchNorm` computes what it
computes from differentiable all-reduces: the global mean and biased variance normalise, the unbiased
variance feeds the running estimate, and the gradient reaches every rank through the shared statistics.
On a machine with two GPUs the same check runs with the real ``sync_batchnorm=True`` and NCCL.

The single-process reference fits the same module, model and schedule on the concatenated batch of 2B
images, with :class:`RankSplitViews` giving rank r's half of the batch its views from rank r's generator,
so both sides train on the same views.

Why the exact comparison runs in float64
----------------------------------------
At initialisation the projections of all images are nearly parallel (the loss is within 1% of
log(2N - 1)), so the gradient of NT-Xent is a small difference of large terms and float32 rounding
changes it by up to ~20% of a tensor's largest entry: the single-process float32 gradient differs that much
from the float64 one, whatever the process count. A float32 comparison of gradients or updated
weights at fp32 tolerances (rtol 1e-4, atol 1e-5) would fail on rounding alone; loose enough to pass, it
would hardly tell synchronised from per-process BatchNorm. So the step is compared exactly in float64
(``precision="64-true"``; the DDP step then equals the single-process step to ~1e-13), and the float32
step, the precision of real runs, checks the well-conditioned quantities at fp32 tolerances (loss and
BatchNorm running statistics) and the weights at a tolerance between float32 noise (~1.3e-3) and the
effect of per-process BatchNorm (~8e-2). Both sides use the run's memory format (channels_last on the CPU).

The negative control trains the same float64 DDP step with per-process BatchNorm (``sync_batchnorm=False``,
the plain layers): the loss, the gradients and the weights then differ from the single-process step, so
the comparison can fail.
"""

from __future__ import annotations

import csv
import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
import torch.distributed as dist
from lightning.fabric.utilities.seed import reset_seed
from lightning.pytorch.plugins.layer_sync import LayerSync
from lightning.pytorch.strategies import DDPStrategy
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.parallel import DistributedDataParallel

from simclr.config import PretrainConfig, build_config
from simclr.errors import UserError
from simclr.losses.distributed import world_size
from simclr.losses.ntxent import NTXentLoss
from simclr.resolve import view_config
from simclr.training.checkpoint_io import load_checkpoint_safely
from simclr.training.datamodule import InMemoryDataModule
from simclr.training.model_and_loss import build_seeded_model
from simclr.training.module import SimCLRModule, view_generator
from simclr.training.plan import invariance_settings, plan_optimisation, resolve_hardware
from simclr.training.training_data import TrainingData, load_training_data
from simclr.views.factory import ViewMaker, build_views

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available"),
]

WORLD = 2
LOCAL_BATCH = 4
SEED = 3
DISTRIBUTED_ENV = ("MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK")
# float64: the two sides sum the same numbers in different orders (convolutions over 8 or 16 images,
# BatchNorm statistics from per-rank partial sums); measured differences are ~1e-13
EXACT = (1e-9, 1e-11)  # rtol, atol
FP32 = (1e-4, 1e-5)


# ----------------------------------------------------------------------------------------------------------
# one DDP step against one single-process step
# ----------------------------------------------------------------------------------------------------------


class _AllReduceSum(torch.autograd.Function):
    """Sum over the ranks; the backward pass sums the incoming gradients over the ranks as well, since
    every rank's loss depends on every rank's contribution."""

    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:
        total = x.contiguous().clone()
        dist.all_reduce(total)
        return total

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        total = grad.contiguous().clone()
        dist.all_reduce(total)
        return total


class CPUSyncBatchNorm(_BatchNorm):
    """BatchNorm over the global batch of all ranks, on any device (``torch.nn.SyncBatchNorm`` is GPU-only).

    In training mode with more than one rank, the mean and the biased variance of every channel over all
    ranks' rows normalise the input, and the running estimates take the unbiased variance, as
    ``nn.BatchNorm`` and ``nn.SyncBatchNorm`` do. Otherwise it is plain BatchNorm.
    """

    def _check_input_dim(self, input: Tensor) -> None:  # BatchNorm1d and BatchNorm2d alike
        return

    def forward(self, input: Tensor) -> Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(input)
        dims = [d for d in range(input.dim()) if d != 1]
        shape = [1, -1] + [1] * (input.dim() - 2)
        count = torch.tensor([input.numel() // input.shape[1]], dtype=torch.float64)
        dist.all_reduce(count)
        total = float(count.item())
        mean = _AllReduceSum.apply(input.sum(dims)) / total
        centred = input - mean.view(shape)
        var = _AllReduceSum.apply(centred.square().sum(dims)) / total
        output = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            output = output * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats:
            assert self.running_mean is not None and self.running_var is not None
            assert self.num_batches_tracked is not None
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                self.running_mean.lerp_(mean.detach(), factor)
                self.running_var.lerp_(var.detach() * total / (total - 1), factor)
        return output


class PlainBatchNorm(_BatchNorm):
    def _check_input_dim(self, input: Tensor) -> None:
        return


def _swap_batchnorm(module: nn.Module, target: type[_BatchNorm]) -> nn.Module:
    """``module`` with every BatchNorm layer replaced by ``target``, sharing weights and buffers (what
    ``nn.SyncBatchNorm.convert_sync_batchnorm`` does)."""
    converted = module
    if isinstance(module, _BatchNorm) and type(module) is not target:
        converted = target(module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats)
        if module.affine:
            converted.weight = module.weight
            converted.bias = module.bias
        converted.running_mean = module.running_mean
        converted.running_var = module.running_var
        converted.num_batches_tracked = module.num_batches_tracked
        converted.train(module.training)
    for name, child in module.named_children():
        converted.add_module(name, _swap_batchnorm(child, target))
    return converted


class CPUSyncBatchNormPlugin(LayerSync):
    """Lightning's ``sync_batchnorm`` mechanism (a ``LayerSync`` plugin) with :class:`CPUSyncBatchNorm`."""

    def apply(self, model: nn.Module) -> nn.Module:
        return _swap_batchnorm(model, CPUSyncBatchNorm)

    def revert(self, model: nn.Module) -> nn.Module:
        return _swap_batchnorm(model, PlainBatchNorm)


class Float64Views:
    """The run's views cast to float64, for a ``precision="64-true"`` step (the view makers draw and render
    in float32)."""

    def __init__(self, views: Any) -> None:
        self.views = views
        self.input_key = views.input_key
        self.n_views = views.n_views

    def __call__(self, source: Tensor, generator: torch.Generator) -> list[Tensor]:
        return [view.double() for view in self.views(source, generator)]


class RankSplitViews:
    """Single-process views of a global batch as W processes draw them: the rows of rank r (the r-th
    block of the batch, see ``InMemoryBatchLoader``) get their views from ``view_generator(seed, step, r)``;
    view v is the concatenation of every rank's view v."""

    def __init__(self, views: Any, seed: int, world: int) -> None:
        self.views = views
        self.seed = seed
        self.world = world
        self.input_key = views.input_key
        self.n_views = views.n_views
        self.step = 0  # one call per training step (no gradient penalty)

    def __call__(self, source: Tensor, generator: torch.Generator) -> list[Tensor]:
        # the module asked for the views of this step on rank 0
        assert torch.equal(generator.get_state(), view_generator(self.seed, self.step, 0).get_state())
        per_rank = [
            self.views(rows, view_generator(self.seed, self.step, rank))
            for rank, rows in enumerate(source.chunk(self.world))
        ]
        self.step += 1
        return [torch.cat(view) for view in zip(*per_rank, strict=True)]


class FileRendezvousDDP(DDPStrategy):
    """Lightning's DDP strategy with the processes meeting through a file instead of ``MASTER_PORT``: a free
    TCP port picked in advance can be taken by another process on the machine before rank 0 binds it.
    Everything after ``init_process_group`` (DDP wrapper, layer sync, launcher, precision) is Lightning's."""

    def __init__(self, rendezvous: Path, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.rendezvous = str(rendezvous)

    def setup_distributed(self) -> None:
        reset_seed()
        self.set_world_ranks()
        self._process_group_backend = self._get_process_group_backend()
        dist.init_process_group(
            self._process_group_backend,
            init_method=f"file://{self.rendezvous}",
            rank=self.global_rank,
            world_size=self.world_size,
            timeout=self._timeout,
        )


def _network(pl_module: L.LightningModule) -> nn.Module:
    model = pl_module.model
    assert isinstance(model, nn.Module)
    return model


class RecordStep(L.Callback):
    """Writes what one process saw and did in its step to ``out_dir/rank{r}.pt``."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = str(out_dir)
        self.record: dict[str, Any] = {}

    def on_before_optimizer_step(
        self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        # after backward, so after DDP averaged the gradients over the ranks
        model = _network(pl_module)
        self.record["grads"] = {
            name: param.grad.detach().clone() for name, param in model.named_parameters() if param.grad is not None
        }
        self.record["lr"] = optimizer.param_groups[0]["lr"]

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self.record["loss"] = outputs["loss"].detach().clone()
        self.record["index"] = batch["index"].clone()

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        model = _network(pl_module)
        self.record.update(
            state={name: value.detach().clone() for name, value in model.state_dict().items()},
            rank=trainer.global_rank,
            world_size=world_size(),
            ddp=isinstance(trainer.strategy.model, DistributedDataParallel),
            batchnorm_layers={type(m).__name__ for m in model.modules() if isinstance(m, _BatchNorm)},
        )
        torch.save(self.record, Path(self.out_dir) / f"rank{trainer.global_rank}.pt")


@dataclass
class StepSetup:
    config: PretrainConfig
    data: TrainingData
    views: ViewMaker
    channels_last: bool


def step_config(**overrides: Any) -> PretrainConfig:
    """A 2-process CPU run: 64 Spirograph images, 8 per process and step, SGD."""
    values: dict[str, Any] = dict(
        dataset="spirograph",
        image_size=8,  # a tenth of the compute of 32 px; the equalities checked do not depend on the size
        train_size=64,
        test_size=16,
        batch_size=LOCAL_BATCH,
        epochs=2,
        precision="32",
        accelerator="cpu",
        devices=str(WORLD),
        strategy="ddp",
        optimizer="sgd",
        lr=1.0,  # peak 1.0 x 16 / 256 at step 0 (no warmup in 8 steps): a step large enough to compare
        knn_every_epochs=0,
        workers=1,
        seed=SEED,
    )
    values.update(overrides)
    return build_config({}, values)


@pytest.fixture(scope="module")
def step_setup() -> StepSetup:
    config = step_config()
    data = load_training_data(config)
    views = build_views(
        data.image_size,
        view_config(config, data.info, data.image_size),
        config.n_views,
        rerender=data.info.regression,
    )
    return StepSetup(config, data, views, resolve_hardware(config).channels_last)


def make_module(setup: StepSetup, views: Any) -> SimCLRModule:
    config = setup.config
    model = build_seeded_model(config, setup.data.image_size, resolve_hardware(config).channels_last)
    return SimCLRModule(
        model,
        views,
        NTXentLoss(temperature=config.temperature, gather_distributed=config.gather_distributed),
        plan_optimisation(config, len(setup.data.train), WORLD),
        seed=config.seed,
        channels_last=setup.channels_last,
        invariance=invariance_settings(config),
    )


def fit_one_step(
    setup: StepSetup, out_dir: Path, *, processes: int, sync: str, precision: str, accelerator: str
) -> tuple[list[dict[str, Any]], dict[str, Tensor]]:
    """Fit one step; return each process's record and the initial weights.

    ``sync``: ``"cpu"`` (:class:`CPUSyncBatchNormPlugin`), ``"torch"`` (``sync_batchnorm=True``) or
    ``"off"``. With one process, the views are split as W processes would draw them.
    """
    out_dir.mkdir()
    distributed = processes > 1
    views: Any = Float64Views(setup.views) if precision == "64-true" else setup.views
    if not distributed:
        views = RankSplitViews(views, setup.config.seed, WORLD)
    module = make_module(setup, views)
    initial = {name: value.detach().clone() for name, value in module.model.state_dict().items()}
    datamodule = InMemoryDataModule(setup.data.train, LOCAL_BATCH * WORLD // processes, setup.config.seed)
    strategy: Any = "auto"
    if distributed:
        strategy = FileRendezvousDDP(
            out_dir / "rendezvous",
            start_method="spawn",
            process_group_backend="nccl" if accelerator == "gpu" else "gloo",
            timeout=timedelta(seconds=120),  # a rank that hangs fails the test instead of blocking it
        )
    trainer = L.Trainer(
        accelerator=accelerator,
        devices=processes,
        strategy=strategy,
        precision=precision,  # type: ignore[arg-type]
        max_steps=1,
        max_epochs=setup.config.epochs,
        sync_batchnorm=sync == "torch",
        plugins=[CPUSyncBatchNormPlugin()] if sync == "cpu" else None,
        callbacks=[RecordStep(out_dir)],
        use_distributed_sampler=False,  # as in a run: the in-memory loader shards by rank itself
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=str(out_dir),
    )
    trainer.fit(module, datamodule=datamodule)
    records = [torch.load(out_dir / f"rank{r}.pt", weights_only=True, map_location="cpu") for r in range(processes)]
    return records, initial


def compare_with_reference(
    setup: StepSetup, tmp_path: Path, *, sync: str, precision: str, accelerator: str = "cpu"
) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, Tensor]]:
    """The DDP step's records, the single-process step's record and the initial weights, after checking
    what holds with and without synchronised BatchNorm."""
    kwargs = {"precision": precision, "accelerator": accelerator}
    ranks, initial = fit_one_step(setup, tmp_path / "ddp", processes=WORLD, sync=sync, **kwargs)
    (single,), single_initial = fit_one_step(setup, tmp_path / "single", processes=1, sync="off", **kwargs)

    for name, value in initial.items():  # the same seeded weights on both sides
        assert torch.equal(value, single_initial[name]), name
    assert single["world_size"] == 1 and not single["ddp"] and single["lr"] > 0
    assert single["batchnorm_layers"] == {"BatchNorm1d", "BatchNorm2d"}
    for rank, record in enumerate(ranks):
        assert record["rank"] == rank and record["world_size"] == WORLD and record["ddp"]
        assert record["lr"] == single["lr"]  # the learning rate of the same global batch
        # each rank trained on its own block of the single-process batch
        assert torch.equal(record["index"], single["index"].chunk(WORLD)[rank])
        # DDP gave every replica the same averaged gradient, and so the same weights
        assert record["grads"].keys() == single["grads"].keys()
        for name, grad in ranks[0]["grads"].items():
            assert torch.equal(record["grads"][name], grad), name
            assert torch.equal(record["state"][name], ranks[0]["state"][name]), name
    return ranks, single, initial


def assert_close(actual: Tensor, expected: Tensor, tolerances: tuple[float, float], name: str = "") -> None:
    rtol, atol = tolerances
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=atol, msg=_prefixed(name))


def _prefixed(name: str) -> Callable[[str], str]:
    """An ``assert_close`` message: torch's own, after the tensor's name."""
    return lambda text: f"{name}: {text}"


def is_close(actual: Tensor, expected: Tensor, tolerances: tuple[float, float]) -> bool:
    try:
        assert_close(actual, expected, tolerances)
    except AssertionError:
        return False
    return True


def mean_loss(ranks: list[dict[str, Any]]) -> Tensor:
    """The loss of the global batch: the mean of the ranks' NT-Xent over their own anchors."""
    return sum(record["loss"] for record in ranks) / WORLD


@pytest.fixture
def restored_environ() -> Iterator[None]:
    """Lightning's launcher and seeding write MASTER_PORT, PL_GLOBAL_SEED, ... into this process's
    environment; put it back as it was."""
    saved = dict(os.environ)
    for name in DISTRIBUTED_ENV:
        os.environ.pop(name, None)
    yield
    os.environ.clear()
    os.environ.update(saved)


def test_the_step_uses_the_learning_rate_of_the_global_batch(step_setup: StepSetup) -> None:
    """W processes of B images plan the schedule of one process of W*B images."""
    images = len(step_setup.data.train)
    single = replace(step_setup.config, batch_size=LOCAL_BATCH * WORLD, devices="1")
    assert plan_optimisation(step_setup.config, images, WORLD) == plan_optimisation(single, images, 1)


@pytest.mark.parametrize(
    ("precision", "sync", "accelerator"),
    [
        pytest.param("64-true", "cpu", "cpu", id="cpu-gloo-float64"),
        pytest.param("32", "cpu", "cpu", id="cpu-gloo-float32"),
        pytest.param(
            "64-true",
            "torch",
            "gpu",
            id="gpu-nccl-float64-torch-syncbatchnorm",
            marks=pytest.mark.skipif(torch.cuda.device_count() < WORLD, reason="needs 2 GPUs"),
        ),
    ],
)
def test_ddp_step_with_synchronised_batchnorm_equals_single_process_step(
    step_setup: StepSetup, tmp_path: Path, restored_environ: None, precision: str, sync: str, accelerator: str
) -> None:
    start = time.perf_counter()
    ranks, single, initial = compare_with_reference(
        step_setup, tmp_path, sync=sync, precision=precision, accelerator=accelerator
    )
    print(f"DDP step + single-process step ({precision}): {time.perf_counter() - start:.1f} s")
    for record in ranks:
        assert record["batchnorm_layers"] == {"CPUSyncBatchNorm" if sync == "cpu" else "SyncBatchNorm"}
    buffers = [name for name in single["state"] if name not in single["grads"]]  # BatchNorm statistics
    weights = list(single["grads"])

    if precision == "64-true":
        assert all(value.dtype == torch.float64 for value in single["grads"].values())
        assert_close(mean_loss(ranks), single["loss"], EXACT)
        # the DDP-averaged gradient is the single-process gradient ...
        for name, grad in single["grads"].items():
            scale = float(grad.abs().max())
            torch.testing.assert_close(ranks[0]["grads"][name], grad, rtol=1e-9, atol=1e-9 * scale, msg=_prefixed(name))
        # ... so the weights and the BatchNorm statistics after the step are the single process's
        for record in ranks:
            for name, value in single["state"].items():
                assert_close(record["state"][name], value, EXACT, name)
        moved = [name for name in weights if not is_close(single["state"][name], initial[name].double(), EXACT)]
        assert len(moved) > 0.9 * len(weights)  # the comparison is not of a step that did nothing
    else:
        # float32: the forward pass is well conditioned (fp32 tolerances; measured errors are ~1/5 of them) ...
        assert_close(mean_loss(ranks), single["loss"], FP32)
        for record in ranks:
            for name in buffers:
                assert_close(record["state"][name], single["state"][name], FP32, name)
        # ... the gradient at initialisation is not (see the module docstring): weights within 1e-2 (float32
        # rounding moves them by ~1.3e-3), where per-process BatchNorm moves them by ~8e-2
        for name in weights:
            torch.testing.assert_close(
                ranks[0]["state"][name], single["state"][name], rtol=0, atol=1e-2, msg=_prefixed(name)
            )


def test_ddp_step_with_per_process_batchnorm_differs(
    step_setup: StepSetup, tmp_path: Path, restored_environ: None
) -> None:
    """Negative control: the same float64 step with per-process BatchNorm is not the single-process step."""
    ranks, single, _ = compare_with_reference(step_setup, tmp_path, sync="off", precision="64-true")
    for record in ranks:
        assert record["batchnorm_layers"] == {"BatchNorm1d", "BatchNorm2d"}
    assert not is_close(mean_loss(ranks), single["loss"], FP32)
    grads = single["grads"]
    differing_grads = [name for name in grads if not is_close(ranks[0]["grads"][name], grads[name], EXACT)]
    assert len(differing_grads) > 0.9 * len(grads)
    differing_weights = [name for name in grads if not is_close(ranks[0]["state"][name], single["state"][name], FP32)]
    assert len(differing_weights) > 0.5 * len(grads)
    # and every rank keeps BatchNorm statistics of its own images
    for name in single["state"]:
        if name.endswith("running_mean"):
            assert not torch.equal(ranks[0]["state"][name], ranks[1]["state"][name]), name


def test_cpu_ddp_does_not_ask_for_gpu_only_sync_batchnorm() -> None:
    """torch's SyncBatchNorm cannot run on CPUs ('SyncBatchNorm layers only work with GPU modules'): CPU
    processes keep per-process statistics by default, and asking for synchronisation is a user error."""
    assert resolve_hardware(step_config()).sync_batchnorm is False
    with pytest.raises(UserError, match="--sync-batchnorm"):
        resolve_hardware(step_config(sync_batchnorm=True))


# ----------------------------------------------------------------------------------------------------------
# checkpoint and resume under DDP, through the CLI
# ----------------------------------------------------------------------------------------------------------

# 32 images / (4 per process x 2 processes) = 4 steps per epoch x 2 epochs
TOTAL_STEPS = 8
DDP_RUN = [
    "--dataset",
    "spirograph",
    "--train-size",
    "32",
    "--test-size",
    "16",
    "--batch-size",
    "4",
    "--epochs",
    "2",
    "--precision",
    "32",
    "--accelerator",
    "cpu",
    "--devices",
    "2",
    "--strategy",
    "ddp",
    "--knn-every-epochs",
    "0",
    "--optimizer",
    "sgd",
    "--lr",
    "0.5",
    "--checkpoint-every-steps",
    "0",
    "--workers",
    "1",
    "--seed",
    str(SEED),
    "--image-size",
    "16",
    "--quiet",
]


def losses(run: Path) -> dict[int, float]:
    if not (run / "metrics.csv").exists():
        return {}
    with open(run / "metrics.csv", newline="") as handle:
        return {int(r["step"]): float(r["train_loss"]) for r in csv.DictReader(handle) if r["train_loss"]}


def assert_same_curve(got: dict[int, float], expected: dict[int, float]) -> None:
    assert sorted(got) == list(range(TOTAL_STEPS)) == sorted(expected)
    for step in range(TOTAL_STEPS):
        assert got[step] == pytest.approx(expected[step], rel=1e-4, abs=1e-5), step


@pytest.fixture(scope="module")
def reference_curve(tmp_path_factory: pytest.TempPathFactory, session_run: type[Any]) -> dict[int, float]:
    """The loss curve of the uninterrupted DDP run (trained once for the tests that resume onto it)."""
    workdir = tmp_path_factory.mktemp("ddp-reference")
    reference = session_run(workdir, "reference", *DDP_RUN, "--out", str(workdir / "run"))
    try:
        assert reference.wait() == 0, reference.output()
    finally:
        reference.kill()
    return losses(workdir / "run")


def test_ddp_run_interrupted_mid_training_resumes_onto_the_reference_curve(
    session_runs: Callable[..., Any], tmp_path: Path, reference_curve: dict[int, float]
) -> None:
    run_dir = tmp_path / "run"
    start = time.perf_counter()
    run = session_runs("run", *DDP_RUN, "--out", str(run_dir))
    deadline = time.time() + 240
    while time.time() < deadline and len(losses(run_dir)) < 2 and run.proc.poll() is None:
        time.sleep(0.05)
    run.proc.send_signal(signal.SIGINT)  # to rank 0 only; the ranks agree on the step to stop at
    assert run.wait() == 130, run.output()
    stopped = dict(losses(run_dir))
    assert 0 < len(stopped) < TOTAL_STEPS, "the signal must arrive mid-training"
    assert sorted(stopped) == list(range(len(stopped)))
    assert f"SIGINT at step {len(stopped)}: saved" in (run_dir / "train.log").read_text()
    checkpoint = load_checkpoint_safely(run_dir / "checkpoints" / "last.ckpt")
    assert checkpoint["global_step"] == len(stopped)

    resumed = session_runs("resumed", "--resume", str(run_dir))
    assert resumed.wait() == 0, resumed.output()
    print(f"interrupted and resumed DDP runs: {time.perf_counter() - start:.1f} s")

    assert "resuming from" in (run_dir / "train.log").read_text()
    got = losses(run_dir)
    assert_same_curve(got, reference_curve)
    assert all(got[step] == stopped[step] for step in stopped)  # the rows before the stop are kept
    final = load_checkpoint_safely(run_dir / "checkpoints" / "last.ckpt")
    assert final["global_step"] == TOTAL_STEPS


def test_ddp_run_stopped_by_max_steps_resumes_onto_the_reference_curve(
    session_runs: Callable[..., Any], tmp_path: Path, reference_curve: dict[int, float]
) -> None:
    """A run stopped by --max-steps mid-epoch continues with a larger --max-steps (the schedule spans all
    epochs either way). Regression: its checkpoint used to be written at Lightning's early epoch end, which
    counted the unfinished epoch as done, and the resumed run stopped at step 4 of 8."""
    run_dir = tmp_path / "run"
    first = session_runs("first", *DDP_RUN, "--out", str(run_dir), "--max-steps", "3")  # mid epoch 0
    assert first.wait() == 0, first.output()
    assert sorted(losses(run_dir)) == [0, 1, 2]
    checkpoint = load_checkpoint_safely(run_dir / "checkpoints" / "last.ckpt")
    assert checkpoint["global_step"] == 3

    resumed = session_runs("resumed", "--resume", str(run_dir), "--max-steps", str(TOTAL_STEPS))
    assert resumed.wait() == 0, resumed.output()
    assert_same_curve(losses(run_dir), reference_curve)
