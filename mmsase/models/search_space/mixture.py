"""Mixtures ``Σ_o w_o · o(x)`` over all ops of a set, for the supernet, sharing work between
the ops.

:func:`squeeze_mixture` runs every squeeze op on one :class:`~.statistics.FeatureStats`, with
the five moment ops as one autograd node (:mod:`~mmsase.models.search_space.moment_mixture`);
:func:`excitation_mixture` runs the convolution stacks of an excitation edge as one C++ call
(:mod:`~mmsase.models.search_space.conv_stacks`); :func:`weighted_sum` sums the rest.
"""
from typing import Sequence, Union

import torch
import torch.nn as nn
from torch import Tensor

from .conv_stacks import conv_stack_logits, conv_stacks_apply
from .excitation import ConvStackExcitation, ExcitationOp
from .moment_mixture import moment_mixture
from .statistics import FeatureStats, as_stats


def weighted_sum(outputs: Union[Sequence[Tensor], Tensor], weights: Tensor) -> Tensor:
    """``Σ_k weights[k] · outputs[k]`` for ``K`` same-shaped outputs (a sequence, or a tensor
    stacked along dim 0) and ``weights (K,)``."""
    stacked = outputs if isinstance(outputs, Tensor) else torch.stack(list(outputs))
    k = stacked.shape[0]
    # one vector-matrix product: one pass over the outputs forward and one per gradient
    return (weights.to(stacked.dtype).view(1, k) @ stacked.reshape(k, -1)).view(stacked.shape[1:])


def squeeze_mixture(ops: Sequence[nn.Module], x: Union[Tensor, FeatureStats],
                    weights: Tensor) -> Tensor:
    """All squeeze ops read one :class:`FeatureStats`, so shared moments are computed once;
    with one-sweep statistics the five moment ops are one autograd node
    (:func:`~.moment_mixture.moment_mixture`)."""
    stats = as_stats(x)
    fused = moment_mixture(ops, stats, weights)
    if fused is None:
        return weighted_sum([op(stats) for op in ops], weights)
    out, rest = fused
    mix = weights.to(out.dtype)
    for i in rest:
        out = torch.addcmul(out, ops[i](stats), mix[i])
    return out


def excitation_mixture(ops: Sequence[ExcitationOp], v: Tensor, weights: Tensor) -> Tensor:
    """One sigmoid for the stacked logits of all ops; the convolution stacks all run in one
    C++ call (:func:`~.conv_stacks.conv_stack_logits`) where the kernel applies.

    (With torch's own convolutions, one zero-padded multi-filter convolution per layer was
    slower on the CPU than separate small ones; the dedicated kernel is faster than both.)
    """
    stacks = [i for i, op in enumerate(ops) if isinstance(op, ConvStackExcitation)]
    if len(stacks) > 1 and conv_stacks_apply([ops[i] for i in stacks], v):
        others = [i for i in range(len(ops)) if i not in stacks]
        logits = torch.cat([conv_stack_logits([ops[i] for i in stacks], v)] +
                           [ops[i].logits(v)[None] for i in others])
        weights = weights[stacks + others]
    else:
        logits = torch.stack([op.logits(v) for op in ops])
    return weighted_sum(torch.sigmoid(logits), weights)
