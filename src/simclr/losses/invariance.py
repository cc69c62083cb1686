"""Gradient-penalty invariance (Foster et al. 2020, "Improving Transformation Invariance in Contrastive
Representation Learning", arXiv:2010.09515, sec. 3; their code's ``invariance_by_gradient.py``).

For the first view ``x1 = T(x, a1)`` of every image, with representation ``h1 = f(x1)`` and
``u = h1 / ||h1||``, a random sign vector ``eps`` turns the representation into one scalar
``s = sum(eps * u)``. Its gradient ``g = ds/da1`` says how a random projection of the representation moves
when the view parameters move; ``g . (a' - a1)`` for freshly re-drawn parameters ``a'`` is the
first-order change of that projection under re-sampling the augmentation, and its mean square over
draws and images is a stochastic estimate of the representation's conditional variance given the image.
Penalising it (``loss = NT-Xent + lambda * GP``) makes the representation invariant to the augmentation.
The penalty is clamped from above at ``upper_limit`` (which zeroes its gradient on saturated batches).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def rademacher(shape: torch.Size | tuple[int, ...], generator: torch.Generator | None, like: Tensor) -> Tensor:
    """Independent +-1 signs, drawn on the CPU generator (reproducible on any device)."""
    signs = torch.randint(0, 2, tuple(shape), generator=generator).to(device=like.device, dtype=like.dtype)
    return signs * 2 - 1


def pin_parameters(redraws: Tensor, params: Tensor, columns: tuple[int, ...]) -> Tensor:
    """``redraws`` with the given parameter columns set to the first view's values, so those parameters'
    terms ``g_k (a'_k - a1_k)`` vanish and the penalty leaves them out (``--gp-exclude``). A deliberate
    option beyond Foster et al.'s method: on Spirograph the first-order term of the shape parameter h
    takes almost all of the penalty (measured in docs/REPRODUCING.md, "Where the penalty's gradient
    goes")."""
    if not columns:
        return redraws
    pinned = redraws.clone()
    index = list(columns)
    pinned[..., index] = params.detach().to(pinned.dtype)[:, index].unsqueeze(0)
    return pinned


def penalty_terms(
    representation: Tensor,
    params: Tensor,
    redraws: Tensor,
    *,
    normalize: bool = True,
    generator: torch.Generator | None = None,
    create_graph: bool = True,
) -> Tensor:
    """The ``(M, B, k)`` products ``g_k * (a'_k - a1_k)`` whose sum over ``k``, squared and averaged, is the
    penalty of :func:`gradient_penalty` (same arguments, same random signs). Kept apart so that a measurement
    can also split the penalty by view parameter: the diagonal terms ``E[(g_k (a'_k - a1_k))^2]`` say which
    parameter the penalty's gradient is spent on."""
    if params.shape[0] != representation.shape[0] or redraws.shape[1:] != params.shape:
        raise ValueError(
            f"shapes do not match: representation {tuple(representation.shape)}, "
            f"params {tuple(params.shape)}, redraws {tuple(redraws.shape)}"
        )
    rep = representation if representation.dtype == torch.float64 else representation.float()
    u = F.normalize(rep, dim=1) if normalize else rep
    scalar = (rademacher(u.shape, generator, u) * u).sum()
    (grad,) = torch.autograd.grad(scalar, params, create_graph=create_graph)
    delta = redraws.to(grad.dtype) - params.to(grad.dtype).unsqueeze(0)
    return delta * grad.unsqueeze(0)


def gradient_penalty(
    representation: Tensor,
    params: Tensor,
    redraws: Tensor,
    *,
    normalize: bool = True,
    upper_limit: float = 1.0,
    generator: torch.Generator | None = None,
    create_graph: bool = True,
) -> Tensor:
    """The penalty for ``representation`` ``(B, D)`` computed from view parameters ``params`` ``(B, k)``
    (a tensor with ``requires_grad`` that the representation depends on) and ``redraws`` ``(M, B, k)``.

    The graph of ``ds/dparams`` is kept (``create_graph``), so the penalty can be minimised with respect
    to the network's weights; ``create_graph=False`` only measures it.

    >>> a = torch.rand(4, 2, requires_grad=True)
    >>> h = torch.cat([a * 2.0, a.sum(1, keepdim=True)], 1)
    >>> float(gradient_penalty(h, a, torch.rand(10, 4, 2), upper_limit=1e9).detach()) >= 0.0
    True
    """
    terms = penalty_terms(
        representation, params, redraws, normalize=normalize, generator=generator, create_graph=create_graph
    )
    return terms.sum(-1).pow(2).mean().clamp(max=upper_limit)
