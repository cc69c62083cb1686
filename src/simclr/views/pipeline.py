"""The SimCLR view pipeline: n random views of a batch, made as one batch on its device.

SimCLR (Chen et al. 2020, arXiv:2002.05709, Appendix A) composes, per view: random resized crop,
horizontal flip, colour jitter (with probability ``jitter_p``), grayscale (``grayscale_p``),
Gaussian blur (``blur_p``), then normalisation. Doing this per image on CPU data-loader workers is
the usual bottleneck for small images; here the parameters of all ``n_views * B`` views are drawn
in one call and the views are rendered in one pass over the concatenated batch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import ClassVar, overload

import torch
from torch import Tensor

from simclr.errors import UserError
from simclr.views import ops
from simclr.views.config import ViewConfig
from simclr.views.params import JITTER_NAMES, ViewParams, sample_jitter, sample_view_params

__all__ = ["SimCLRViews", "StreamedViews"]


def _as_unit_float(images: Tensor, dtype: torch.dtype | None = None) -> Tensor:
    """uint8 in [0, 255] -> float in [0, 1]; floats are taken to be in [0, 1] already."""
    if images.ndim != 4 or images.shape[1] != 3:
        raise UserError(f"images must be (B, 3, H, W) RGB, got shape {tuple(images.shape)}")
    if images.dtype == torch.uint8:
        return images.to(dtype or torch.float32).div_(255.0)
    if not images.is_floating_point():
        raise UserError(f"images must be uint8 or float in [0, 1], got dtype {images.dtype}")
    return images if dtype is None else images.to(dtype)


class SimCLRViews(torch.nn.Module):
    """n random views per image, made as one batch on the device of the input.

    Each image gets its own independent parameters for every view (never one draw shared by the
    batch). Randomness comes only from the CPU ``generator`` passed to :meth:`forward`, so a
    fixed seed reproduces the views bit-exactly on a given device.
    """

    input_key: ClassVar[str] = "images"
    """The batch entry the views are made from: the stored uint8 images."""
    invariance_parameter_names: ClassVar[tuple[str, ...]] = JITTER_NAMES
    """The columns of :meth:`redraw_invariance_params` and of the leaf of :meth:`views_with_grad`."""
    mean: Tensor
    std: Tensor

    def __init__(
        self, config: ViewConfig, n_views: int = 2, local_config: ViewConfig | None = None, local_views: int = 0
    ) -> None:
        super().__init__()
        config.validate()
        if isinstance(n_views, bool) or not isinstance(n_views, int) or n_views < 2:
            raise UserError(f"n_views must be an integer >= 2 (contrastive pairs), got {n_views!r}")
        if isinstance(local_views, bool) or not isinstance(local_views, int) or local_views < 0:
            raise UserError(f"local_views must be an integer >= 0, got {local_views!r}")
        if local_views and local_config is None:
            raise UserError("local_views needs local_config, the view distribution of the local crops")
        if local_config is not None:
            local_config.validate()
        self.config = config
        self.n_views = n_views
        self.local_config = local_config
        self.local_views = local_views  # multi-crop's small views, after the n_views global ones
        self.register_buffer("mean", torch.tensor(config.mean).reshape(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(config.std).reshape(1, 3, 1, 1), persistent=False)

    def extra_repr(self) -> str:
        local = f", local_views={self.local_views}, local_config={self.local_config}" if self.local_views else ""
        return f"n_views={self.n_views}, config={self.config}{local}"

    def forward(self, images: Tensor, generator: torch.Generator, partners: Tensor | None = None) -> list[Tensor]:
        """Return ``n_views`` tensors (B, 3, size, size), float32, normalised, channels_last.

        ``images`` is (B, 3, H, W) uint8 or float in [0, 1] on any device. View ``v`` of image
        ``i`` uses row ``v * B + i`` of one :func:`sample_view_params` draw of ``n_views * B``
        rows, so ``apply(images, params.narrow(v * B, B))`` reproduces it. With ``partners`` (B images
        of the same shape, ``--positives class``) the first view is of ``images`` and the others of
        ``partners``, with the same parameter draw. With ``local_views`` L, L more tensors follow, (B, 3, S, S)
        at the local config's size S, from a second draw of ``L * B`` rows of the same generator (after the
        first, so the global views are those of a run without local crops).
        """
        views, _ = self._views(images, generator, with_grad=False, partners=partners)
        return views

    def views_with_grad(self, images: Tensor, generator: torch.Generator) -> tuple[list[Tensor], Tensor]:
        """The same views as :meth:`forward` (same generator, same pixels) plus the first view's
        colour-jitter parameters ``(B, 4)`` as a leaf with ``requires_grad``, which that view is a
        differentiable function of (the gradient-penalty method of Foster et al. 2020)."""
        views, leaf = self._views(images, generator, with_grad=True)
        assert leaf is not None
        return views, leaf

    def redraw_invariance_params(
        self, batch: int, draws: int, generator: torch.Generator, device: torch.device
    ) -> Tensor:
        """``(draws, batch, 4)`` fresh colour-jitter parameters from the view distribution."""
        return sample_jitter(draws * batch, self.config, generator, device).reshape(draws, batch, -1)

    def _views(
        self, images: Tensor, generator: torch.Generator, *, with_grad: bool, partners: Tensor | None = None
    ) -> tuple[list[Tensor], Tensor | None]:
        x = _as_unit_float(images, torch.float32)
        bsz, _, height, width = x.shape
        params = sample_view_params(self.n_views * bsz, (height, width), self.config, generator, device=x.device)
        leaf = None
        if with_grad:
            leaf = params.jitter[:bsz].detach().clone().requires_grad_(True)
            params = replace(params, jitter=torch.cat([leaf, params.jitter[bsz:]]))
        first = torch.arange(bsz, device=x.device)
        if partners is None:
            source = first.repeat(self.n_views)
        else:  # rows bsz.. of x are the partners: every view after the first is cut from them
            x = torch.cat([x, _as_unit_float(partners, torch.float32)])
            source = torch.cat([first, (first + bsz).repeat(self.n_views - 1)])
        views = list(self._render_drawn(x, params, source).split(bsz, dim=0))
        if self.local_views:
            views += self._local_views(x[:bsz], generator, partners is not None)
        return views, leaf

    def _local_views(self, images: Tensor, generator: torch.Generator, paired_by_class: bool) -> list[Tensor]:
        """Multi-crop's ``local_views`` small views of each image (Caron et al. 2020, SwAV), drawn after the global
        views from the same generator and rendered at the local size in one pass."""
        if paired_by_class:
            raise UserError("--local-crops pairs the views of one image; drop it or --positives class")
        assert self.local_config is not None
        bsz, _, height, width = images.shape
        params = sample_view_params(
            self.local_views * bsz, (height, width), self.local_config, generator, device=images.device
        )
        source = torch.arange(bsz, device=images.device).repeat(self.local_views)
        return list(self._render_drawn(images, params, source, self.local_config).split(bsz, dim=0))

    def _render_drawn(
        self, images: Tensor, params: ViewParams, source_index: Tensor | None, config: ViewConfig | None = None
    ) -> Tensor:
        """:meth:`_render` of parameters drawn from ``config`` (default: the global views'): each op runs when
        the config can draw it (a batch-wide flag from the config, never read back from the device)."""
        cfg = config or self.config
        return self._render(
            images,
            params,
            source_index,
            do_jitter=cfg.jitter_p > 0,
            do_gray=cfg.grayscale_p > 0,
            do_blur=cfg.blur_p > 0,
            do_extras=cfg.geometric_extras,
            config=cfg,
        )

    @overload
    def apply(self, fn: Callable[[torch.nn.Module], None], /) -> SimCLRViews: ...

    @overload
    def apply(self, images: Tensor, params: ViewParams, /) -> Tensor: ...

    def apply(  # type: ignore[override]
        self,
        images: Tensor | Callable[[torch.nn.Module], None],
        params: ViewParams | None = None,
        /,
    ) -> Tensor | SimCLRViews:
        """One view per image from explicit ``params`` (B rows), normalised, channels_last.

        ``images`` is float in [0, 1] (uint8 is accepted too); its dtype is kept, so double
        precision and ``requires_grad`` on ``params.jitter`` work for gradient checks.

        The name shadows :meth:`torch.nn.Module.apply`, which parents call recursively on their
        children (``model.apply(init_fn)``); called with a single callable it still does that.
        """
        if params is None:
            if callable(images) and not isinstance(images, Tensor):
                return super().apply(images)
            raise TypeError("apply(images, params) needs the view parameters")
        assert isinstance(images, Tensor)
        x = _as_unit_float(images)
        if params.batch_size != x.shape[0]:
            raise ValueError(f"{params.batch_size} view parameters for {x.shape[0]} images")
        return self._render(
            x,
            params.to(x.device),
            None,
            do_jitter=bool(params.jitter_on.any()),
            do_gray=bool(params.grayscale.any()),
            do_blur=bool(params.blur_on.any()),
            do_extras=bool(params.vflip.any() or params.rotation.ne(0).any()),
        )

    def _render(
        self,
        images: Tensor,
        params: ViewParams,
        source_index: Tensor | None,
        *,
        do_jitter: bool,
        do_gray: bool,
        do_blur: bool,
        do_extras: bool = False,
        config: ViewConfig | None = None,
    ) -> Tensor:
        """crop -> flip -> [vertical flip -> rotation] -> jitter -> grayscale -> blur -> normalise (Appendix A
        order; the bracketed geometric extras are not the paper's and run only when asked for), at the size and
        blur kernel of ``config`` (default: the global views')."""
        cfg = config or self.config
        x = ops.resized_crop(images, params.crop_boxes, cfg.size, source_index)
        # Work in channels_last from here on: the output format, and the hue matmul wants it.
        x = x.contiguous(memory_format=torch.channels_last)
        x = ops.horizontal_flip(x, params.flip)
        if do_extras:
            x = ops.rotate(ops.vertical_flip(x, params.vflip), params.rotation)
        if do_jitter:
            x = ops.color_jitter(x, params.jitter, params.jitter_on)
        if do_gray:
            x = ops.random_grayscale(x, params.grayscale)
        if do_blur:
            blurred = ops.gaussian_blur(x, params.blur_sigma, cfg.blur_kernel_size)
            x = torch.where(params.blur_on.reshape(-1, 1, 1, 1), blurred, x)
        mean = self.mean.to(device=x.device, dtype=x.dtype)
        std = self.std.to(device=x.device, dtype=x.dtype)
        x = (x - mean) / std
        return x.contiguous(memory_format=torch.channels_last)


class StreamedViews(SimCLRViews):
    """The views of a streamed batch: cropped and resized per image by the loader workers (each from its
    stored image at full resolution, :func:`simclr.data.streaming.crop_views`), then flipped, colour
    jittered, grayscaled, blurred and normalised here as one batch on the device, as :class:`SimCLRViews`
    does after its own crop. The batch entry is ``(B, n_views, 3, size, size)`` uint8.
    """

    input_key: ClassVar[str] = "views"

    def _views(
        self, images: Tensor, generator: torch.Generator, *, with_grad: bool, partners: Tensor | None = None
    ) -> tuple[list[Tensor], Tensor | None]:
        if partners is not None:
            raise UserError("--positives class needs the training images in memory; streamed data pairs views only")
        if images.ndim != 5 or images.shape[1] != self.n_views:
            raise UserError(f"streamed views must be (B, {self.n_views}, 3, H, W), got shape {tuple(images.shape)}")
        bsz = images.shape[0]
        x = _as_unit_float(images.transpose(0, 1).reshape(-1, *images.shape[2:]), torch.float32)
        size = (int(x.shape[-2]), int(x.shape[-1]))
        params = sample_view_params(x.shape[0], size, self.config, generator, device=x.device)
        params = replace(params, crop_boxes=torch.tensor([[0.0, 0.0, 1.0, 1.0]], device=x.device).expand(x.shape[0], 4))
        leaf = None
        if with_grad:
            leaf = params.jitter[:bsz].detach().clone().requires_grad_(True)
            params = replace(params, jitter=torch.cat([leaf, params.jitter[bsz:]]))
        views = self._render_drawn(x, params, None)
        return list(views.split(bsz, dim=0)), leaf
