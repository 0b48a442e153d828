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
per edge. :func:`moment_mixture` computes it as one node whose forward and backward are a few
operations on ``(B, F, L)`` stacks (``F`` the two-statistic ops), in float64 — the values of
the ops themselves, with the BatchNorms' running statistics updated as the modules would.
"""
import os
from typing import List, NamedTuple, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from torch import Tensor
from torch.autograd.function import once_differentiable

from ...utils.cpp_extension import LazyExtension
from .common import (L4_EPS, SKEW_EPS, STD_EPS, FeatureStats, GAPGMPSqueeze, GAPSkewSqueeze,
                     GAPSqueeze, GAPStdSqueeze, L4Squeeze, TwoStatSqueeze)

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
    with stats.full_precision():
        raw = stats.raw_sums(axis)
        out = _MomentMixture.apply(raw, peak, weights[found.positions],
                                   _Config(len(found.mean), len(found.l4),
                                           [_SECOND_CODE[s] for s in seconds], norms),
                                   *params)
        shape = (b, c, 1, 1) if axis == 'space' else (b, 1, h, w)
        out = stats.restore(out.to(stats.dtype).view(shape))
    done = set(found.positions)
    return out, [i for i in range(len(ops)) if i not in done]


class _Config(NamedTuple):
    n_mean: int
    n_l4: int
    seconds: List[int]  # per fusion: 0 max, 1 std, 2 skew (the kernel's codes)
    norms: List[nn.Module]


_SECOND_CODE = {'max': 0, 'std': 1, 'skew': 2}
_EPS = [STD_EPS, SKEW_EPS, L4_EPS]


def _update_running_stats(norms, mean: Tensor, var: Tensor, n: int) -> None:
    """What ``nn.BatchNorm`` does to its buffers in a training step, per module."""
    unbiased = var * (n / (n - 1))
    for f, bn in enumerate(norms):
        bn.num_batches_tracked.add_(1)
        factor = (1.0 / float(bn.num_batches_tracked)
                  if bn.momentum is None else bn.momentum)
        bn.running_mean.lerp_(mean[f:f + 1].to(bn.running_mean.dtype), factor)
        bn.running_var.lerp_(unbiased[f:f + 1].to(bn.running_var.dtype), factor)


class _MomentMixture(torch.autograd.Function):
    """``(raw (B, 4, L) f64, peak (B, L) | None, mix (K,), config, *params)`` → ``(B, L)``
    float64, ``mix`` ordered as ``config``: the ``gap`` ops, the ``l4`` ops, the fusions;
    ``params`` per fusion: conv weight, conv bias, BN weight, BN bias."""

    @staticmethod
    def forward(ctx, raw, peak, mix, cfg: _Config, *params):
        f64 = torch.float64
        n_fuse = len(cfg.seconds)
        peak64 = peak.to(f64).contiguous() if peak is not None else raw.new_empty(0)
        if n_fuse:
            conv_w = torch.cat([p.reshape(1, 2) for p in params[0::4]]).to(f64)  # (F, 2)
            table = torch.cat([conv_w.t()] + [torch.cat(params[k::4]).to(f64)[None]
                                              for k in (1, 2, 3)]).contiguous()  # (5, F)
            training = cfg.norms[0].training
            running_mean = torch.cat([bn.running_mean for bn in cfg.norms]).to(f64)
            running_var = torch.cat([bn.running_var for bn in cfg.norms]).to(f64)
            eps = torch.tensor([bn.eps for bn in cfg.norms], dtype=f64)
        else:
            table = raw.new_empty(0)
            training = False
            running_mean = running_var = eps = raw.new_empty(0)
        mix64 = mix.to(f64).contiguous()
        if raw.stride(2) != 1:
            raw = raw.contiguous()
        args = (raw, peak64, cfg.seconds, table, mix64, cfg.n_mean, cfg.n_l4, _EPS, training)
        out, mean, var, kept, y = EXTENSION.load().forward(*args, running_mean, running_var,
                                                           eps)
        if training:
            _update_running_stats(cfg.norms, mean, var, raw.shape[0] * raw.shape[2])
        ctx.args = args
        ctx.norm = (mean, var, eps, kept, y)
        ctx.input_meta = (peak.dtype if peak is not None else None, mix.dtype,
                          [(p.shape, p.dtype) for p in params])
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, g):
        peak_dtype, mix_dtype, param_meta = ctx.input_meta
        grad_raw, grad_peak, grad_mix, table = EXTENSION.load().backward(
            g.to(torch.float64).contiguous(), *ctx.args, *ctx.norm)
        grad_params = []
        for f in range(len(param_meta) // 4):
            values = (table[0:2, f], table[2, f], table[3, f], table[4, f])
            for (shape, dtype), value in zip(param_meta[4 * f:4 * f + 4], values):
                grad_params.append(value.reshape(shape).to(dtype))
        grad_peak = grad_peak.to(peak_dtype) if peak_dtype is not None else None
        return (grad_raw, grad_peak, grad_mix.to(mix_dtype), None, *grad_params)
