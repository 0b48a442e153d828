"""All convolution stacks of an excitation edge in one C++ call, for the supernet's mixtures.

An excitation edge of the supernet applies seven operations to one small map; five or six of
them are stacks of one-channel convolutions (``conv1d_*``, ``conv_*``, ``sep_*``). Run one by
one they cost a dozen convolution calls forward and backward per edge, each far slower on the
CPU than its arithmetic (oneDNN is not made for one-channel maps), plus the glue around them.
:func:`conv_stack_logits` runs them all in one call of the kernel in ``csrc/conv_stacks.cpp``
(which keeps the intermediate maps for its backward pass). The values equal the ops' own
:meth:`~mmsase.models.search_space.common.ConvStackExcitation.logits`.
"""
import os
from typing import Sequence

import torch
from torch import Tensor

from ...utils.cpp_extension import LazyExtension
from .power_sums import eligible

EXTENSION = LazyExtension(
    os.path.join(os.path.dirname(__file__), 'csrc', 'conv_stacks.cpp'), 'mmsase_conv_stacks',
    'supernet convolution kernel', logger_name=__name__)


class _ConvStacks(torch.autograd.Function):

    @staticmethod
    def forward(ctx, h, weights, biases, structure):
        logits, inter = EXTENSION.load().forward(h, weights, biases, *structure)
        ctx.save_for_backward(h, weights, inter)
        ctx.structure = structure
        ctx.has_bias = biases.numel() > 0
        return logits

    @staticmethod
    def backward(ctx, grad_logits):
        h, weights, inter = ctx.saved_tensors
        need = ctx.needs_input_grad
        grad_h, grad_w, grad_b = EXTENSION.load().backward(
            h, weights, inter, grad_logits.contiguous(), *ctx.structure, need[0], need[1],
            need[2] and ctx.has_bias)
        return grad_h, grad_w, grad_b, None


def conv_stack_logits(ops: Sequence[torch.nn.Module], v: Tensor) -> Tensor:
    """The logits of the :class:`ConvStackExcitation` ops for input ``v``, stacked
    ``(len(ops), *v.shape)``; the same values as ``[op.logits(v) for op in ops]``."""
    signal = ops[0].to_signal(v)  # (B, 1, H, W), or (B, 1, L) for 1-D stacks
    h = signal if signal.dim() == 4 else signal.unsqueeze(2)
    convs = [conv for op in ops for conv in op.convs]
    shapes = [tuple(conv.weight.shape[2:]) for conv in convs]
    structure = ([s[0] if len(s) == 2 else 1 for s in shapes], [s[-1] for s in shapes],
                 [conv.bias is not None for conv in convs], [len(op.convs) for op in ops],
                 [op.relu_between for op in ops])
    weights = torch.cat([conv.weight.reshape(-1) for conv in convs])
    biases = [conv.bias for conv in convs if conv.bias is not None]
    biases = torch.cat(biases) if biases else weights.new_empty(0)
    logits = _ConvStacks.apply(h.contiguous(), weights, biases, structure)
    return logits.view(len(ops), *v.shape)


def conv_stacks_apply(ops: Sequence[torch.nn.Module], v: Tensor) -> bool:
    """Whether :func:`conv_stack_logits` can run ``ops`` on ``v``: the signal is
    :func:`~.power_sums.eligible`, the weights share its dtype, and the kernel builds."""
    signal = ops[0].to_signal(v)
    probe = signal if signal.dim() == 4 else signal.unsqueeze(2)
    return (eligible(probe) and probe.shape[1] == 1
            and all(conv.weight.dtype == probe.dtype for op in ops for conv in op.convs)
            and EXTENSION.load() is not None)
