"""Batched one-channel convolutions (C++), for the excitation mixtures of the supernet.

An excitation edge of the supernet applies seven operations to one small map; five or six of
them are stacks of one-channel convolutions (``conv1d_*``, ``conv_*``, ``sep_*``). Run one by
one they cost a dozen convolution calls forward and backward per edge, each far slower on the
CPU than its arithmetic (oneDNN is not made for one-channel maps). :func:`conv_stack_logits`
runs all the stacks of an edge *layer by layer*, each layer one call of the kernel in
``csrc/filter_conv.cpp``::

    out[b, k] = bias_k + conv(f_k(h[b, src_k]), w_k)     (zero padding, same size)

where filter ``k`` reads input channel ``src_k`` (its own op's previous layer) through
``f_k`` = ReLU or the identity, and kernels of different sizes are zero-padded to a common
one (the padding is neither multiplied nor differentiated). The values equal the ops' own
:meth:`~mmsase.models.search_space.common.ConvStackExcitation.logits`.
"""
import os
from typing import List, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ...utils.cpp_extension import LazyExtension
from .power_sums import eligible

EXTENSION = LazyExtension(
    os.path.join(os.path.dirname(__file__), 'csrc', 'filter_conv.cpp'), 'mmsase_filter_conv',
    'supernet convolution kernel', logger_name=__name__)


class _FilterConv(torch.autograd.Function):

    @staticmethod
    def forward(ctx, h, weight, bias, src, ext_h, ext_w, relu):
        out = EXTENSION.load().forward(h, weight, bias, list(src), list(ext_h), list(ext_w),
                                       list(relu))
        ctx.save_for_backward(h, weight)
        ctx.meta = (list(src), list(ext_h), list(ext_w), list(relu), bias.numel() > 0)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        h, weight = ctx.saved_tensors
        src, ext_h, ext_w, relu, has_bias = ctx.meta
        need = ctx.needs_input_grad
        grad_h, grad_w, grad_b = EXTENSION.load().backward(h, weight, grad_out.contiguous(), src,
                                                           ext_h, ext_w, relu, need[0], need[1],
                                                           need[2] and has_bias)
        return grad_h, grad_w, grad_b, None, None, None, None


def filter_conv(h: Tensor, weight: Tensor, bias: Tensor, src: Sequence[int],
                extents: Sequence[Sequence[int]], relu: Sequence[bool]) -> Tensor:
    """``K`` one-channel convolutions of ``h (B, Cin, H, W)`` → ``(B, K, H, W)``.

    Args:
        weight: ``(K, KH, KW)``, odd sides; filter ``k`` uses its centred ``extents[k]``.
        bias: ``(K,)``, or an empty tensor for none.
        src: the input channel of each filter.
        extents: ``(kh, kw)`` of each filter (odd, at most ``(KH, KW)``).
        relu: whether each filter reads its input through a ReLU.
    """
    ext_h = [int(e[0]) for e in extents]
    ext_w = [int(e[1]) for e in extents]
    return _FilterConv.apply(h.contiguous(), weight.contiguous(), bias.contiguous(),
                             tuple(int(s) for s in src), tuple(ext_h), tuple(ext_w),
                             tuple(bool(r) for r in relu))


def kernel_2d(conv: torch.nn.Module, size: Sequence[int]) -> Tensor:
    """A convolution's one-channel kernel as ``(kh, kw)``, zero-padded (centred) to ``size``."""
    w = conv.weight.reshape(conv.weight.shape[2:])
    if w.dim() == 1:
        w = w.unsqueeze(0)
    ph, pw = (size[0] - w.shape[0]) // 2, (size[1] - w.shape[1]) // 2
    return F.pad(w, (pw, pw, ph, ph)) if ph or pw else w


def conv_stack_logits(ops: Sequence[torch.nn.Module], v: Tensor) -> List[Tensor]:
    """The logits of every :class:`ConvStackExcitation` in ``ops`` for input ``v``, layer by
    layer through :func:`filter_conv`; same values as ``[op.logits(v) for op in ops]``."""
    signals = [op.to_signal(v) for op in ops]  # (B, 1, H, W) or (B, 1, L)
    h = signals[0]
    one_d = h.dim() == 3
    if one_d:
        h = h.unsqueeze(2)  # (B, 1, 1, L)
    depth = max(len(op.convs) for op in ops)
    channel = {}  # op index → its channel in the current layer's output
    for layer in range(depth):
        members = [i for i, op in enumerate(ops) if len(op.convs) > layer]
        convs = [ops[i].convs[layer] for i in members]
        extents = [tuple(c.weight.shape[2:]) if not one_d else (1, c.weight.shape[-1])
                   for c in convs]
        size = (max(e[0] for e in extents), max(e[1] for e in extents))
        weight = torch.stack([kernel_2d(c, size) for c in convs])
        biases = [c.bias if c.bias is not None else None for c in convs]
        if all(b is None for b in biases):
            bias = weight.new_empty(0)
        else:
            bias = torch.cat([b if b is not None else weight.new_zeros(1) for b in biases])
        src = [channel[i] if layer else 0 for i in members]
        relu = [layer > 0 and ops[i].relu_between for i in members]
        h = filter_conv(h, weight, bias, src, extents, relu)
        channel = {i: k for k, i in enumerate(members)}
        if layer == 0:
            outputs = {}
        for i in range(len(ops)):
            if len(ops[i].convs) == layer + 1:
                outputs[i] = h[:, channel[i]:channel[i] + 1]
    logits = []
    for i, op in enumerate(ops):
        s = outputs[i]
        logits.append(op.from_signal(s.squeeze(2) if one_d else s, v))
    return logits


def batched_convs_apply(ops: Sequence[torch.nn.Module], v: Tensor) -> bool:
    """Whether :func:`conv_stack_logits` can run ``ops`` on ``v``: the signal is
    :func:`~.power_sums.eligible`, the weights share its dtype, and the kernel builds."""
    signal = ops[0].to_signal(v)
    probe = signal if signal.dim() == 4 else signal.unsqueeze(2)
    return (eligible(probe)
            and all(conv.weight.dtype == probe.dtype for op in ops for conv in op.convs)
            and EXTENSION.load() is not None)
