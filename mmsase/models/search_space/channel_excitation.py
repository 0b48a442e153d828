"""Channel-excitation set (spec §2): ``(B, C, 1, 1) → (B, C, 1, 1)``, each ends with σ.

| name         | operation                                                   | params            |
|--------------|-------------------------------------------------------------|-------------------|
| `fc`         | ``C → max(1, C//16) → C``, ReLU between, no bias (SE, r=16)  | 2·C·max(1, C//16) |
| `conv1d_3`   | 1-D conv across channels, k = 3, no bias (ECA)              | 3                 |
| `conv1d_5`   | same, k = 5                                                 | 5                 |
| `conv1d_7`   | same, k = 7                                                 | 7                 |
| `conv1d_3x2` | two stacked k = 3 convs, ReLU between                       | 6                 |
| `conv1d_3x3` | three stacked k = 3 convs, ReLU between                     | 9                 |
| `affine`     | ``w ⊙ z + b`` (init w = 1, b = 0)                            | 2C                |
"""
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from .excitation import ConvStackExcitation, ExcitationOp


class ChannelFC(ExcitationOp):
    """``fc``: ``σ(W2 δ(W1 z))``, ``W1: C → max(1, C // reduction)``, no biases (spec §2)."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__(channels)
        self.hidden = max(1, channels // reduction)
        self.fc1 = nn.Linear(channels, self.hidden, bias=False)
        self.fc2 = nn.Linear(self.hidden, channels, bias=False)

    def logits(self, z: Tensor) -> Tensor:
        return self.fc2(F.relu(self.fc1(z.flatten(1)))).view_as(z)


class ChannelConv1d(ConvStackExcitation):
    """Stacked 1-D convs across the channel axis (ECA): one filter each, no bias, zero padding
    ``k // 2``, ReLU between consecutive convs."""

    conv_dims = 1

    def __init__(self, channels: int, kernel_sizes: Sequence[int] = (3, )):
        super().__init__(channels, kernel_sizes, biases=[False] * len(kernel_sizes))

    def to_signal(self, z: Tensor) -> Tensor:
        return z.flatten(1).unsqueeze(1)  # (B, C, 1, 1) → (B, 1, C)

    def from_signal(self, s: Tensor, z: Tensor) -> Tensor:
        return s.view_as(z)


class ChannelConv1dK3(ChannelConv1d):
    """``conv1d_3``: one k = 3 conv across channels."""

    def __init__(self, channels: int):
        super().__init__(channels, (3, ))


class ChannelConv1dK5(ChannelConv1d):
    """``conv1d_5``: one k = 5 conv across channels."""

    def __init__(self, channels: int):
        super().__init__(channels, (5, ))


class ChannelConv1dK7(ChannelConv1d):
    """``conv1d_7``: one k = 7 conv across channels."""

    def __init__(self, channels: int):
        super().__init__(channels, (7, ))


class ChannelConv1dK3x2(ChannelConv1d):
    """``conv1d_3x2``: two stacked k = 3 convs, ReLU between."""

    def __init__(self, channels: int):
        super().__init__(channels, (3, 3))


class ChannelConv1dK3x3(ChannelConv1d):
    """``conv1d_3x3``: three stacked k = 3 convs, ReLU between."""

    def __init__(self, channels: int):
        super().__init__(channels, (3, 3, 3))


class ChannelAffine(ExcitationOp):
    """``affine``: ``σ(w ⊙ z + b)``, one scale and shift per channel (init w = 1, b = 0)."""

    def __init__(self, channels: int):
        super().__init__(channels)
        self.weight = nn.Parameter(torch.ones(1, channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def logits(self, z: Tensor) -> Tensor:
        return torch.addcmul(self.bias, z, self.weight)


#: The channel-excitation set, in the spec's order.
CHANNEL_EXCITATION_OPS = {
    'fc': ChannelFC,
    'conv1d_3': ChannelConv1dK3,
    'conv1d_5': ChannelConv1dK5,
    'conv1d_7': ChannelConv1dK7,
    'conv1d_3x2': ChannelConv1dK3x2,
    'conv1d_3x3': ChannelConv1dK3x3,
    'affine': ChannelAffine,
}

__all__ = ['CHANNEL_EXCITATION_OPS', 'ChannelConv1d'] + [
    cls.__name__ for cls in CHANNEL_EXCITATION_OPS.values()
]
