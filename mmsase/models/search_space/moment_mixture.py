"""The five moment ops of a squeeze edge as one autograd node (the supernet's fused path).

Of the seven squeeze ops, five are functions of the raw moments ``r_k = mean x^k`` (k = 1..4)
and the maximum along the squeezed axis::

    gap       μ = r1
    l4        (r4 + 1e-6)^(1/4)
    gap_gmp   δ(BN(w0 μ + w1 max  + b))
    gap_std   δ(BN(w0 μ + w1 σ    + b))     σ    = sqrt(r2 − r1² + 1e-5)
    gap_skew  δ(BN(w0 μ + w1 skew + b))     skew = (r3 − 3 r1 r2 + 2 r1³) / (σ³ + 1e-5)

each BN a one-channel BatchNorm over all ``B·L`` values. In the supernet every edge applies all
of them, and written op by op their weighted sum ``Σ_o w_o · o`` is ~150 small autograd nodes
per edge. :func:`moment_mixture` computes it as one node whose forward and backward are one
call each of a C++ kernel (``csrc/moment_mixture.cpp``, float64 inside, compiled on first use)
— the values of the ops themselves, with the BatchNorms' running statistics updated as the
modules would. Where the kernel does not apply (see :func:`moment_mixture`) or does not build,
the ops run one by one.
"""
import os
from typing import List, NamedTuple, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from torch import Tensor
from torch.autograd.function import once_differentiable

from ...utils.cpp_extension import LazyExtension
from .squeeze import (GAPGMPSqueeze, GAPSkewSqueeze, GAPSqueeze, GAPStdSqueeze, L4Squeeze,
                      TwoStatSqueeze)
from .statistics import L4_EPS, SKEW_EPS, STD_EPS, FeatureStats

EXTENSION = LazyExtension(
    os.path.join(os.path.dirname(__file__), 'csrc', 'moment_mixture.cpp'),
    'mmsase_moment_mixture', 'supernet moment-mixture kernel', logger_name=__name__)

#: two-statistic op class → the statistic fused with the mean.
SECOND_STATISTIC = {GAPGMPSqueeze: 'max', GAPStdSqueeze: 'std', GAPSkewSqueeze: 'skew'}


class MomentOps(NamedTuple):
    """The moment ops of a set, by their position in the set's op list."""
    mean: List[int]                  # gap
    l4: List[int]                    # l4
    fusions: List[Tuple[int, str]]   # (position, second statistic) of each two-statistic op

    @property
    def positions(self) -> List[int]:
        return self.mean + self.l4 + [i for i, _ in self.fusions]


def find_moment_ops(ops: Sequence[nn.Module]) -> MomentOps:
    """Which of ``ops`` :func:`moment_mixture` can evaluate: instances of the shared squeeze
    classes that do not override how they compute (a subclass that does runs on its own)."""
    found = MomentOps([], [], [])
    for i, op in enumerate(ops):
        cls = type(op)
        if isinstance(op, GAPSqueeze) and cls.statistics is GAPSqueeze.statistics:
            found.mean.append(i)
        elif isinstance(op, L4Squeeze) and cls.statistics is L4Squeeze.statistics:
            found.l4.append(i)
        elif isinstance(op, TwoStatSqueeze) and (cls.statistics is TwoStatSqueeze.statistics
                                                 and cls.head is TwoStatSqueeze.head):
            for base, second in SECOND_STATISTIC.items():
                if isinstance(op, base) and cls.second is base.second:
                    found.fusions.append((i, second))
                    break
    return found


def moment_mixture(ops: Sequence[nn.Module], stats: FeatureStats,
                   weights: Tensor) -> Optional[Tuple[Tensor, List[int]]]:
    """``Σ w_o · o(x)`` over the moment ops among ``ops`` (see the module docstring) in one
    autograd node, and the positions of the ops it did not include; ``None`` where it does not
    apply — statistics without one-sweep raw moments along the ops' axis, a maximum needed but
    not swept, BatchNorms that are not affine with running statistics or not all in one mode,
    or a single value per BatchNorm in training (the ops then raise BatchNorm's error)."""
    if not ops:
        return None
    axis = ops[0].axis
    found = find_moment_ops(ops)
    if len(found.positions) < 2 or not stats.over(axis).one_sweep or EXTENSION.load() is None:
        return None
    seconds = [second for _, second in found.fusions]
    peak = None
    if 'max' in seconds:
        peak = stats.sweep_max(axis)
        if peak is None:
            return None
    norms = [ops[i].fusion.bn for i, _ in found.fusions]
    if any(not (bn.affine and bn.track_running_stats) for bn in norms) or len(
            {bn.training for bn in norms}) > 1:
        return None
    b, c, h, w = stats.shape
    training = bool(norms) and norms[0].training
    if training and b * (c if axis == 'space' else h * w) == 1:
        return None
    params = []
    for i, _ in found.fusions:
        fusion = ops[i].fusion
        params += [fusion.conv.weight, fusion.conv.bias, fusion.bn.weight, fusion.bn.bias]
    cfg = _Config(found.positions, len(found.mean), len(found.l4),
                  [_SECOND_CODE[s] for s in seconds], norms, training,
                  stats.dtype == torch.float64)
    with stats.full_precision():
        raw = stats.raw_sums(axis)
        if raw.stride(2) != 1:
            raw = raw.contiguous()
        out = _MomentMixture.apply(raw, peak, weights.contiguous(), cfg, *params)
        shape = (b, c, 1, 1) if axis == 'space' else (b, 1, h, w)
        out = stats.restore(out.view(shape))
    done = set(found.positions)
    return out, [i for i in range(len(ops)) if i not in done]


class _Config(NamedTuple):
    positions: List[int]  # of the ops' mixture weights: gap ops, l4 ops, fusions
    n_mean: int
    n_l4: int
    seconds: List[int]  # per fusion: 0 max, 1 std, 2 skew (the kernel's codes)
    norms: List[nn.Module]
    training: bool  # the BatchNorms' mode (batch statistics, running ones updated)
    out_double: bool  # else float32


_SECOND_CODE = {'max': 0, 'std': 1, 'skew': 2}
_EPS = [STD_EPS, SKEW_EPS, L4_EPS]


class _MomentMixture(torch.autograd.Function):
    """``(raw (B, 4, L) f64, peak (B, L) | None, weights (K,), config, *params)`` → ``(B, L)``
    in the compute dtype: ``Σ weights[p] · op_p`` over the moment ops at ``config.positions``;
    ``params`` per fusion: conv weight, conv bias, BN weight, BN bias. The kernel reads the
    parameters and updates the BatchNorms' running statistics itself (a handful of scalars:
    gathering them with torch operations cost more than the whole kernel on small maps)."""

    @staticmethod
    def forward(ctx, raw, peak, weights, cfg: _Config, *params):
        norms = cfg.norms
        peak = peak if peak is not None else raw.new_empty(0)
        args = (raw, peak, cfg.seconds, list(params), weights, cfg.positions, cfg.n_mean,
                cfg.n_l4, _EPS, cfg.training)
        out, mean, var, kept, y = EXTENSION.load().forward(
            *args, [bn.running_mean for bn in norms], [bn.running_var for bn in norms],
            [bn.num_batches_tracked for bn in norms], [bn.eps for bn in norms],
            [-1.0 if bn.momentum is None else bn.momentum for bn in norms], cfg.out_double)
        ctx.args = args
        ctx.saved = (mean, var, [bn.eps for bn in norms], kept, y)
        ctx.has_peak = peak.numel() > 0
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, g):
        grad_raw, grad_peak, grad_weights, *grad_params = EXTENSION.load().backward(
            g, *ctx.args, *ctx.saved)
        return (grad_raw, grad_peak if ctx.has_peak else None, grad_weights, None, *grad_params)
