"""All convolution stacks of an excitation edge in one C++ call, for the supernet's mixtures.

An excitation edge of the supernet applies seven operations to one small map; five or six of
them are stacks of one-channel convolutions (``conv1d_*``, ``conv_*``, ``sep_*``). Run one by
one they cost a dozen convolution calls forward and backward per edge, each far slower on the
CPU than its arithmetic (oneDNN is not made for one-channel maps), plus the glue around them.
:func:`conv_stack_logits` runs them all in one call of the kernel in ``csrc/conv_stacks.cpp``
(which keeps the intermediate maps for its backward pass). The values equal the ops' own
:meth:`~mmsase.models.search_space.excitation.ConvStackExcitation.logits`.
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
    """``(h, structure, n_weights, *weights, *biases)`` → the stacked logits. The parameters
    come in as they are (one autograd input each) and are flattened inside: flattening them
    outside would add two nodes per convolution to the graph."""

    @staticmethod
    def forward(ctx, h, structure, n_weights, *params):
        weights, biases = params[:n_weights], params[n_weights:]
        flat_w = torch.cat([w.reshape(-1) for w in weights])
        flat_b = torch.cat([b.reshape(-1) for b in biases]) if biases else flat_w.new_empty(0)
        logits, inter = EXTENSION.load().forward(h, flat_w, flat_b, *structure)
        ctx.save_for_backward(h, flat_w, inter)
        ctx.structure = structure
        ctx.shapes = [p.shape for p in params]
        ctx.n_weights = n_weights
        return logits

    @staticmethod
    def backward(ctx, grad_logits):
        h, flat_w, inter = ctx.saved_tensors
        n_weights, shapes = ctx.n_weights, ctx.shapes
        need = ctx.needs_input_grad
        need_w = any(need[3:3 + n_weights])
        need_b = len(shapes) > n_weights and any(need[3 + n_weights:])
        grad_h, grad_w, grad_b = EXTENSION.load().backward(
            h, flat_w, inter, grad_logits.contiguous(), *ctx.structure, need[0], need_w,
            need_b)

        def split(flat, part_shapes):
            if flat is None:
                return [None] * len(part_shapes)
            sizes = [torch.Size(s).numel() for s in part_shapes]
            return [g.view(s) for g, s in zip(flat.split(sizes), part_shapes)]

        return (grad_h, None, None, *split(grad_w, shapes[:n_weights]),
                *split(grad_b, shapes[n_weights:]))


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
    weights = [conv.weight for conv in convs]
    biases = [conv.bias for conv in convs if conv.bias is not None]
    logits = _ConvStacks.apply(h.contiguous(), structure, len(weights), *weights, *biases)
    return logits.view(len(ops), *v.shape)


def conv_stacks_apply(ops: Sequence[torch.nn.Module], v: Tensor) -> bool:
    """Whether :func:`conv_stack_logits` can run ``ops`` on ``v``: the signal is
    :func:`~.power_sums.eligible`, the weights share its dtype, and the kernel builds."""
    signal = ops[0].to_signal(v)
    probe = signal if signal.dim() == 4 else signal.unsqueeze(2)
    return (eligible(probe) and probe.shape[1] == 1
            and all(conv.weight.dtype == probe.dtype for op in ops for conv in op.convs)
            and EXTENSION.load() is not None)
