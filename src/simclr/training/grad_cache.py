"""Gradient caching (``--micro-batch M``): the contrastive loss of a large batch and its exact gradients, with
the activations of only M images held at a time (Gao et al. 2021, "Scaling Deep Contrastive Learning Batch
Size under Memory Limited Setup", arXiv:2101.06983).

NT-Xent couples every image of the batch to every other one (each is a negative of all the others), so the
batch cannot be cut into independent pieces the way gradient accumulation cuts a supervised batch. But the
loss depends on the network only through the embeddings, which are small: :func:`embed_in_micro_batches`

1. embeds the whole batch without a graph, M images (with all their V views) at a time;
2. lets the caller compute the loss on the full batch of embeddings as usual (NT-Xent with the negatives
   gathered from every process) and back-propagate it down to the embeddings;
3. in that backward pass, embeds each micro-batch again, this time with a graph, and back-propagates its
   slice of the cached embedding gradient to the parameters.

The loss is the loss of the batch in one pass and the parameter gradients are its gradients (up to the order
in which float sums are taken), for about one extra forward pass. The one known difference: BatchNorm in
training mode normalises each micro-batch with that micro-batch's statistics and updates its running
statistics once per micro-batch (docs/LARGE_BATCHES.md); in eval mode, or with GroupNorm or LayerNorm,
nothing differs. ``--micro-batch`` equal to the batch gives the one-pass result in either mode.

Why an autograd Function under Lightning's automatic optimisation, not manual optimisation: the step returns
the same loss tensor as without micro-batches, and Lightning calls its backward through the precision plugin
(the fp16 loss scaler), clips the gradients, runs ``on_before_optimizer_step`` (the non-finite guard) and
steps the optimiser and the schedule exactly as in a run without ``--micro-batch``; manual optimisation would
have to re-implement each of those. Phase 3 runs inside the backward of :class:`_CachedEmbeddings`, and its
parameter gradients are computed with ``torch.autograd.grad`` (nothing accumulates into ``.grad`` there) and
returned as the Function's gradients for the parameters, which are its inputs: every parameter's gradient
then accumulates once per step, so DistributedDataParallel sees each parameter ready once and all-reduces
once per step, with no ``no_sync`` and no ``static_graph``.

What the re-forward of phase 3 keeps equal to phase 1:

* autocast: the backward pass runs outside the autocast context of the training step, so phase 3 enters
  the one phase 1 ran under (device type, dtype, on or off);
* random numbers: the states of the CPU and CUDA generators are saved before each micro-batch's forward in
  phase 1 and restored for its re-forward, so dropout draws the same masks (as Gao et al. do); the
  generators are left where phase 1 left them;
* buffers: BatchNorm's running statistics are updated by phase 1 only; the re-forwards' updates are undone.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from simclr.errors import UserError

RngState = tuple[Tensor, Tensor | None]  # the CPU generator's state, and the CUDA device's (None off CUDA)


def embed_in_micro_batches(network: nn.Module, inputs: Tensor, n_views: int, micro_batch: int) -> tuple[Tensor, ...]:
    """``network(inputs)`` as a tuple of its outputs (a tensor output gives a tuple of one), computed M =
    ``micro_batch`` images at a time, whose backward pass re-runs each micro-batch and leaves the gradients of
    the batch in one pass on the network's parameters (see the module docstring).

    ``inputs`` holds the V = ``n_views`` views of B images view-major (row ``v*B + i`` is view v of image i, as
    the training step concatenates them); a micro-batch is M images with all their views, rows ``v*B + i`` for
    i in one slice of M, so it is a batch of the same kind. Every output must have one row per input row.

    Raises:
        UserError: when M does not divide B, or when ``inputs`` needs a gradient (the re-forward gives gradients
            to the parameters only).
    """
    batch = inputs.shape[0] // n_views
    if micro_batch < 1 or batch % micro_batch:
        raise UserError(f"--micro-batch {micro_batch} does not divide the batch of {batch} images; pass a divisor")
    if inputs.requires_grad:
        raise UserError(
            "--micro-batch gives gradients to the network's parameters only, not to its inputs (the gradient "
            "penalty differentiates the views); drop --micro-batch or --lambda-gp"
        )
    parameters = tuple(p for p in network.parameters() if p.requires_grad)
    outputs: tuple[Tensor, ...] = _CachedEmbeddings.apply(network, inputs, n_views, micro_batch, *parameters)
    return outputs


def micro_batch_inputs(inputs: Tensor, n_views: int, micro_batch: int) -> list[Tensor]:
    """The micro-batches of a view-major batch: micro-batch k holds rows ``v*B + i`` for every view v and i in
    ``[k*M, (k+1)*M)``, view-major again, in the memory format of ``inputs`` (a cat of channels_last slices
    stays channels_last)."""
    batch = inputs.shape[0] // n_views
    return [
        torch.cat([inputs[view * batch + start : view * batch + start + micro_batch] for view in range(n_views)])
        for start in range(0, batch, micro_batch)
    ]


def _as_tuple(output: Tensor | tuple[Tensor, ...] | list[Tensor]) -> tuple[Tensor, ...]:
    return (output,) if isinstance(output, Tensor) else tuple(output)


def _join(pieces: list[Tensor], n_views: int) -> Tensor:
    """One output of the whole batch, view-major, from the same output of each micro-batch."""
    return torch.cat([piece.unflatten(0, (n_views, -1)) for piece in pieces], dim=1).flatten(0, 1)


def _slice(whole: Tensor, n_views: int, start: int, micro_batch: int) -> Tensor:
    """The rows of one micro-batch (images ``start .. start+M-1``, every view) of a view-major batch tensor."""
    return whole.unflatten(0, (n_views, -1))[:, start : start + micro_batch].flatten(0, 1)


def _rng_state(device: torch.device) -> RngState:
    return torch.get_rng_state(), torch.cuda.get_rng_state(device) if device.type == "cuda" else None


@contextmanager
def _replayed_rng(state: RngState, device: torch.device) -> Iterator[None]:
    """The generators as they were at ``state``, and back where they were afterwards."""
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.set_rng_state(state[0])
        if state[1] is not None:
            torch.cuda.set_rng_state(state[1], device)
        yield


class _CachedEmbeddings(torch.autograd.Function):
    """Phase 1 in the forward pass (no graph is built inside a Function's forward), phase 3 in the backward
    pass; the parameters are inputs so that their gradients are this Function's to return."""

    @staticmethod
    def forward(
        ctx: Any, network: nn.Module, inputs: Tensor, n_views: int, micro_batch: int, *parameters: Tensor
    ) -> Any:
        device_type = inputs.device.type
        ctx.network, ctx.n_views, ctx.micro_batch, ctx.parameters = network, n_views, micro_batch, parameters
        ctx.autocast = (device_type, torch.get_autocast_dtype(device_type), torch.is_autocast_enabled(device_type))
        ctx.rng_states = []
        ctx.set_materialize_grads(False)  # an output the loss does not use (the features) gets no gradient
        ctx.save_for_backward(inputs)
        pieces = []
        for micro_inputs in micro_batch_inputs(inputs, n_views, micro_batch):
            ctx.rng_states.append(_rng_state(inputs.device))
            pieces.append(_as_tuple(network(micro_inputs)))
        ctx.buffers = [buffer.detach().clone() for buffer in network.buffers()]  # as phase 1 leaves them
        return tuple(_join(list(output), n_views) for output in zip(*pieces, strict=True))

    @staticmethod
    def backward(ctx: Any, *output_grads: Tensor | None) -> Any:
        (inputs,) = ctx.saved_tensors
        n_views, micro_batch, parameters = ctx.n_views, ctx.micro_batch, ctx.parameters
        device_type, dtype, autocast_on = ctx.autocast
        totals: list[Tensor | None] = [None] * len(parameters)
        starts = range(0, inputs.shape[0] // n_views, micro_batch)
        micro_batches = micro_batch_inputs(inputs, n_views, micro_batch)
        for start, micro_inputs, rng in zip(starts, micro_batches, ctx.rng_states, strict=True):
            with (
                torch.enable_grad(),
                torch.autocast(device_type, dtype=dtype, enabled=autocast_on),
                _replayed_rng(rng, inputs.device),
            ):
                outputs = _as_tuple(ctx.network(micro_inputs))
            used = [
                (output, _slice(grad, n_views, start, micro_batch))
                for output, grad in zip(outputs, output_grads, strict=True)
                if grad is not None and output.requires_grad
            ]
            if not used:
                continue
            grads = torch.autograd.grad(
                [output for output, _ in used], parameters, [grad for _, grad in used], allow_unused=True
            )
            totals = [
                total if grad is None else grad if total is None else total.add_(grad)
                for total, grad in zip(totals, grads, strict=True)
            ]
        with torch.no_grad():
            for buffer, kept in zip(ctx.network.buffers(), ctx.buffers, strict=True):
                buffer.copy_(kept)
        return (None, None, None, None, *totals)
