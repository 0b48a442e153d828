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
moments — while ``x`` and its gradient stay float32 (or float64); the gradient's per-element
polynomial is evaluated in ``x``'s precision. The kernel serves contiguous
float32/float64 CPU tensors (:func:`kernel_applies`); elsewhere the squeeze ops use their
eager formulas, which compute the same values.
"""
import os
from typing import NamedTuple, Optional, Sequence, Tuple

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
    """The kernel as one autograd node. Its sums come out as one tensor per group of rows
    (``chan_split``/``space_split`` rows each), so that consumers of different groups do not
    pay for slicing one output (a slice's backward fills a full-size zero tensor)."""

    @staticmethod
    def forward(ctx, x, chan_w, space_w, scale, chan_pow, space_pow, chan_split, space_split,
                chan_max, space_max):
        ctx.set_materialize_grads(False)
        ext = EXTENSION.load()
        chan, space, cmax, cidx, smax = ext.forward(x, chan_w, list(chan_pow), space_w,
                                                    list(space_pow), chan_max, scale, space_max)
        ctx.save_for_backward(x, chan_w, space_w, scale, cidx, smax)
        ctx.powers = (list(chan_pow), list(space_pow))
        ctx.splits = (chan_split, space_split)
        return (*chan.split(chan_split, 1), *space.split(space_split, 1), cmax, smax)

    @staticmethod
    def backward(ctx, *grads):
        x, chan_w, space_w, scale, cidx, smax = ctx.saved_tensors
        chan_pow, space_pow = ctx.powers
        chan_split, space_split = ctx.splits
        g_chan, grads = grads[:len(chan_split)], grads[len(chan_split):]
        g_space, (g_cmax, g_smax) = grads[:len(space_split)], grads[len(space_split):]

        def joined(parts, sizes, length):
            """The parts' gradients as one contiguous float64 (B, J, length) tensor (zeros
            for parts without one), or an empty tensor if none has one."""
            if all(g is None for g in parts):
                return torch.empty(0, dtype=torch.float64)
            b = x.shape[0]
            return torch.cat([
                x.new_zeros(b, j, length, dtype=torch.float64) if g is None else g.to(
                    torch.float64) for g, j in zip(parts, sizes)
            ], 1)

        def contiguous(g):
            return g.contiguous() if g is not None and g.numel() else torch.empty(0)

        grad_x, grad_cw, grad_sw, grad_scale = EXTENSION.load().backward(
            x, chan_w, chan_pow, space_w, space_pow,
            joined(g_chan, chan_split, x.shape[2]), joined(g_space, space_split, x.shape[1]),
            cidx, contiguous(g_cmax), scale, smax, contiguous(g_smax),
            ctx.needs_input_grad[1], ctx.needs_input_grad[2], ctx.needs_input_grad[3])
        return (grad_x, grad_cw, grad_sw, grad_scale) + (None, ) * 6


class PowerSumsParts(NamedTuple):
    chan: Tuple[Tensor, ...]      # one (B, J_i, H·W) float64 tensor per group of channel rows
    space: Tuple[Tensor, ...]     # one (B, J_i, C) float64 tensor per group of space rows
    chan_max: Optional[Tensor]    # (B, H·W), x's dtype: max_c (s_c x_c)
    space_max: Optional[Tensor]   # (B, C), x's dtype: max_p x


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
    out = power_sums_parts(x, [chan] if chan else [], [space] if space else [], chan_max,
                           chan_max_scale, space_max)
    return PowerSumsResult(out.chan[0] if chan else None, out.space[0] if space else None,
                           out.chan_max, out.space_max)


def power_sums_parts(x: Tensor,
                     chan: Sequence[Rows] = (),
                     space: Sequence[Rows] = (),
                     chan_max: bool = False,
                     chan_max_scale: Optional[Tensor] = None,
                     space_max: bool = False) -> PowerSumsParts:
    """:func:`power_sums` for several groups of rows per axis in one sweep, their sums
    returned per group (in the order given)."""
    b, c, h, w = x.shape
    empty = x.new_empty(0, dtype=torch.float64)
    chan_w = torch.cat([_rows_tensor(r, (b, c), 'chan') for r in chan], 1) if chan else empty
    space_w = torch.cat([_rows_tensor(r, (b, h * w), 'space') for r in space],
                        1) if space else empty
    scale = empty if chan_max_scale is None else chan_max_scale.to(torch.float64).reshape(
        b, c).contiguous()
    chan_split = tuple(len(r.powers) for r in chan)
    space_split = tuple(len(r.powers) for r in space)
    out = _PowerSums.apply(x.contiguous().view(b, c, h * w), chan_w, space_w, scale,
                           tuple(k for r in chan for k in r.powers),
                           tuple(k for r in space for k in r.powers), chan_split, space_split,
                           chan_max, space_max)
    n_chan = len(chan_split)
    n_space = len(space_split)
    cmax, smax = out[n_chan + n_space:]
    return PowerSumsParts(tuple(out[:n_chan]), tuple(out[n_chan:n_chan + n_space]),
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
