"""The base of every excitation op (``σ(logits)``), and stacks of single-filter convolutions.

:class:`ConvStackExcitation` is shared by the channel set (1-D convs across channels) and the
spatial set (2-D convs over positions); :func:`conv_single_channel` is its convolution.
"""
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from ..utils import check_channels


Kernel = Union[int, Tuple[int, ...]]


class ExcitationOp(nn.Module):
    """Base of every excitation op: ``forward(v) = σ(logits(v))``, same shape in and out."""

    def __init__(self, channels: int):
        super().__init__()
        self.channels = check_channels(channels)

    def logits(self, v: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self, v: Tensor) -> Tensor:
        return torch.sigmoid(self.logits(v))


class ConvStackExcitation(ExcitationOp):
    """Stacked single-filter convolutions (1 input and 1 output channel each), zero padding
    ``k // 2`` ('same'); ReLU between consecutive convs if ``relu_between``.

    Subclasses fix ``conv_dims`` (1: a 1-D conv across the channels of ``(B, C, 1, 1)``;
    2: a 2-D conv over the positions of ``(B, 1, H, W)``) and, for 1-D,
    :meth:`to_signal`/:meth:`from_signal`. Odd kernel sizes only (centred 'same' padding).
    """

    conv_dims = 2

    def __init__(self,
                 channels: int,
                 kernel_sizes: Sequence[Kernel],
                 biases: Sequence[bool],
                 relu_between: bool = True):
        super().__init__(channels)
        if len(kernel_sizes) != len(biases):
            raise ValueError(f'{len(kernel_sizes)} kernel sizes but {len(biases)} bias flags')
        conv_cls = nn.Conv1d if self.conv_dims == 1 else nn.Conv2d
        convs = []
        for k, bias in zip(kernel_sizes, biases):
            k = (k, ) * self.conv_dims if isinstance(k, int) else tuple(k)
            if any(side % 2 == 0 for side in k):
                raise ValueError(f'kernel sizes must be odd, got {k}')
            convs.append(conv_cls(1, 1, k, padding=tuple(side // 2 for side in k), bias=bias))
        self.convs = nn.ModuleList(convs)
        self.relu_between = relu_between

    def to_signal(self, v: Tensor) -> Tensor:
        """The op's input as a 1-channel conv input."""
        return v

    def from_signal(self, s: Tensor, v: Tensor) -> Tensor:
        """A 1-channel conv output back in the op's output shape (that of ``v``)."""
        return s

    def logits(self, v: Tensor) -> Tensor:
        s = self.to_signal(v)
        for i, conv in enumerate(self.convs):
            if i and self.relu_between:
                s = F.relu(s)
            s = conv_single_channel(s, conv.weight, conv.bias, conv.padding)
        return self.from_signal(s, v)


def conv_single_channel(x: Tensor, weight: Tensor, bias: Optional[Tensor],
                        padding: Tuple[int, ...]) -> Tensor:
    """A 1-in 1-out convolution: ``F.conv2d(x, weight, bias, padding=padding)`` of
    ``x (B, 1, H, W)`` computed as a depthwise convolution of ``(1, B, H, W)`` (the kernel
    repeated per sample); 1-D inputs ``(B, 1, L)`` go to ``F.conv1d`` as they are.

    The result is the same; the speed is not: a one-channel convolution is a poor fit for the
    CPU kernels chosen for ordinary layers (oneDNN's backward pass measured ~10× slower for
    ``(64, 1, 32, 32)``), while depthwise convolutions are well optimised everywhere.
    """
    b = x.shape[0]
    if x.dim() != 4 or b == 1:
        conv = F.conv1d if x.dim() == 3 else F.conv2d
        return conv(x, weight, bias, padding=padding)
    out = F.conv2d(x.reshape(1, b, *x.shape[2:]), weight.expand(b, -1, -1, -1),
                   None if bias is None else bias.expand(b), padding=padding, groups=b)
    return out.view(b, 1, *out.shape[2:])
