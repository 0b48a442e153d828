"""Weighted power sums of a feature map in one sweep (C++), with their gradient.

For ``x (B, C, H, W)`` and weighted rows along each axis (row ``j``: weights and a power ``k``)::

    chan [b, j, p] = Σ_c chan_w [b, j, c] · x[b, c, p]^k      p over the H·W positions
    space[b, j, c] = Σ_p space_w[b, j, p] · x[b, c, p]^k

plus, optionally, ``max_c (s_c · x_c)`` per position and ``max_p x`` per channel. Every squeeze
statistic of the search space is a function of such sums — the means (``k = 1``), the central
moments (from the raw moments ``k = 1..3``), L4 (``k = 4``), and the standardise-then-L2 ops
(``std_l2``: ``mean (a·x + b)²`` is a row of power 2 plus a row of power 1) — so the supernet's
squeeze edges, which apply all seven ops, read ``x`` a few times instead of dozens, and the
gradient with respect to ``x`` is one cubic polynomial per element (see ``csrc/power_sums.cpp``).

Sums, weights and their gradients are float64 — central moments are differences of raw
moments — while ``x`` and its gradient stay float32 (or float64). The kernel serves contiguous
float32/float64 CPU tensors (:func:`kernel_applies`); elsewhere the squeeze ops use their
eager formulas, which compute the same values.
"""
import os
from typing import NamedTuple, Optional, Sequence

import torch
from torch import Tensor

from ...utils.cpp_extension import DISABLE_ENV  # noqa: F401 (re-exported)
from ...utils.cpp_extension import LazyExtension, dispatch_mode_active, kernels_disabled

EXTENSION = LazyExtension(
    os.path.join(os.path.dirname(__file__), 'csrc', 'power_sums.cpp'), 'mmsase_power_sums',
    'supernet power-sum kernel', logger_name=__name__,
    headers=[os.path.join(os.path.dirname(__file__), 'csrc', 'power_sums_kernels.h')])


class Rows(NamedTuple):
    """Weighted rows along one axis: ``weights (B, J, L)`` (float64) and ``powers`` (J ints,
    each 1–4). ``L`` is ``C`` for channel rows and ``H·W`` for space rows."""
    weights: Tensor
    powers: Sequence[int]


class PowerSumsResult(NamedTuple):
    chan: Optional[Tensor]        # (B, Jc, H·W) float64
    space: Optional[Tensor]       # (B, Js, C) float64
    chan_max: Optional[Tensor]    # (B, H·W), x's dtype: max_c (s_c x_c)
    space_max: Optional[Tensor]   # (B, C), x's dtype: max_p x


def eligible(x: Tensor) -> bool:
    """Whether the C++ kernels of the search space may read ``x``: a plain (not subclassed)
    non-empty 4-D float32/float64 CPU tensor, no CPU autocast (which would run the eager ops
    in lower precision), no ``TorchDispatchMode`` active (a FLOP counter would not see the
    kernels' work), and ``MMSASE_NO_FUSED`` unset."""
    return (type(x) is Tensor and x.device.type == 'cpu' and x.dim() == 4
            and x.dtype in (torch.float32, torch.float64) and x.numel() > 0
            and not torch.is_autocast_enabled('cpu')
            and not kernels_disabled() and not dispatch_mode_active())


def kernel_applies(x: Tensor) -> bool:
    """Whether :func:`power_sums` may run on ``x``: :func:`eligible` and the kernel builds
    (on first use)."""
    return eligible(x) and EXTENSION.load() is not None


class _PowerSums(torch.autograd.Function):

    @staticmethod
    def forward(ctx, x, chan_w, space_w, scale, chan_pow, space_pow, chan_max, space_max):
        ext = EXTENSION.load()
        chan, space, cmax, cidx, smax = ext.forward(x, chan_w, list(chan_pow), space_w,
                                                    list(space_pow), chan_max, scale, space_max)
        ctx.save_for_backward(x, chan_w, space_w, scale, cidx, smax)
        ctx.powers = (list(chan_pow), list(space_pow))
        return chan, space, cmax, smax

    @staticmethod
    def backward(ctx, g_chan, g_space, g_cmax, g_smax):
        x, chan_w, space_w, scale, cidx, smax = ctx.saved_tensors
        chan_pow, space_pow = ctx.powers

        def contiguous(g):
            return g.contiguous() if g is not None and g.numel() else torch.empty(0)

        grad_x, grad_cw, grad_sw, grad_scale = EXTENSION.load().backward(
            x, chan_w, chan_pow, space_w, space_pow,
            contiguous(g_chan).to(torch.float64), contiguous(g_space).to(torch.float64),
            cidx, contiguous(g_cmax), scale, smax, contiguous(g_smax),
            ctx.needs_input_grad[1], ctx.needs_input_grad[2], ctx.needs_input_grad[3])
        return grad_x, grad_cw, grad_sw, grad_scale, None, None, None, None


def power_sums(x: Tensor,
               chan: Optional[Rows] = None,
               space: Optional[Rows] = None,
               chan_max: bool = False,
               chan_max_scale: Optional[Tensor] = None,
               space_max: bool = False) -> PowerSumsResult:
    """The weighted power sums and maxima of ``x (B, C, H, W)`` in one sweep (see the module
    docstring); differentiable in ``x``, the weights and ``chan_max_scale (B, C)``.

    Only for tensors where :func:`kernel_applies` holds.
    """
    b, c, h, w = x.shape
    empty = x.new_empty(0, dtype=torch.float64)
    chan_w = _rows_tensor(chan, (b, c), 'chan') if chan else empty
    space_w = _rows_tensor(space, (b, h * w), 'space') if space else empty
    scale = empty if chan_max_scale is None else chan_max_scale.to(torch.float64).reshape(
        b, c).contiguous()
    out = _PowerSums.apply(x.contiguous().view(b, c, h * w), chan_w, space_w, scale,
                           tuple(chan.powers) if chan else (), tuple(space.powers)
                           if space else (), chan_max, space_max)
    cs, ss, cmax, smax = out
    return PowerSumsResult(cs if chan else None, ss if space else None,
                           cmax if chan_max else None, smax if space_max else None)


def _rows_tensor(rows: Rows, shape, name: str) -> Tensor:
    weights = rows.weights.to(torch.float64)
    if weights.dim() != 3 or tuple(weights.shape[::2]) != shape or \
            weights.shape[1] != len(rows.powers):
        raise ValueError(f'{name} weights must have shape ({shape[0]}, {len(rows.powers)}, '
                         f'{shape[1]}), got {tuple(weights.shape)}')
    if any(k not in (1, 2, 3, 4) for k in rows.powers):
        raise ValueError(f'{name} powers must be 1..4, got {tuple(rows.powers)}')
    return weights.contiguous()


def uniform_rows(batch: int, length: int, like: Tensor, powers=(1, 2, 3, 4)) -> Rows:
    """Rows ``1/length`` for each power: the raw moments ``mean x^k`` along an axis."""
    weights = like.new_full((batch, len(powers), length), 1.0 / length, dtype=torch.float64)
    return Rows(weights, tuple(powers))
