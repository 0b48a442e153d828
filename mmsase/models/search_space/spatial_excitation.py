"""Spatial-excitation set (spec §2): ``(B, 1, H, W) → (B, 1, H, W)``, each ends with σ.

| name         | operation                                              | params |
|--------------|--------------------------------------------------------|--------|
| `conv_3`     | 3×3 conv 1→1, padding 1, bias                          | 10     |
| `conv_5`     | 5×5 conv, padding 2, bias                              | 26     |
| `conv_7`     | 7×7 conv, padding 3, bias                              | 50     |
| `conv_3x3x2` | two stacked 3×3 convs with bias, ReLU between          | 20     |
| `sep_3`      | 3×1 conv then 1×3 conv (spatially separable)           | 7      |
| `sep_5`      | 5×1 conv then 1×5 conv                                 | 11     |
| `affine`     | one scale and one shift shared by all positions        | 2      |

The ops take the block's ``channels`` for a uniform constructor; their input has 1 channel.
"""
import torch
import torch.nn as nn
from torch import Tensor

from .excitation import ConvStackExcitation, ExcitationOp


class SpatialConv3(ConvStackExcitation):
    """``conv_3``: ``σ(Conv3×3(h))``, with bias."""

    def __init__(self, channels: int):
        super().__init__(channels, [3], biases=[True])


class SpatialConv5(ConvStackExcitation):
    """``conv_5``: ``σ(Conv5×5(h))``, with bias."""

    def __init__(self, channels: int):
        super().__init__(channels, [5], biases=[True])


class SpatialConv7(ConvStackExcitation):
    """``conv_7``: ``σ(Conv7×7(h))``, with bias."""

    def __init__(self, channels: int):
        super().__init__(channels, [7], biases=[True])


class SpatialConv3x3x2(ConvStackExcitation):
    """``conv_3x3x2``: ``σ(Conv3×3(δ(Conv3×3(h))))``, both with bias (20 parameters)."""

    def __init__(self, channels: int):
        super().__init__(channels, [3, 3], biases=[True, True], relu_between=True)


class SpatialSep3(ConvStackExcitation):
    """``sep_3``: ``σ(Conv1×3(Conv3×1(h)))``, spatially separable. Only the second conv has a
    bias: with nothing non-linear between them, a first bias would only shift the second's
    (up to border effects)."""

    def __init__(self, channels: int):
        super().__init__(channels, [(3, 1), (1, 3)], biases=[False, True], relu_between=False)


class SpatialSep5(ConvStackExcitation):
    """``sep_5``: ``σ(Conv1×5(Conv5×1(h)))``; bias on the second conv only (see ``sep_3``)."""

    def __init__(self, channels: int):
        super().__init__(channels, [(5, 1), (1, 5)], biases=[False, True], relu_between=False)


class SpatialAffine(ExcitationOp):
    """``affine``: ``σ(w·h + b)`` with one scalar ``w`` (init 1) and ``b`` (init 0).

    **Decision** (spec §2): shared by all positions, so the block works at any input size.
    """

    def __init__(self, channels: int):
        super().__init__(channels)
        self.weight = nn.Parameter(torch.ones(1))
        self.bias = nn.Parameter(torch.zeros(1))

    def logits(self, h: Tensor) -> Tensor:
        return torch.addcmul(self.bias, h, self.weight)


#: The spatial-excitation set, in the spec's order.
SPATIAL_EXCITATION_OPS = {
    'conv_3': SpatialConv3,
    'conv_5': SpatialConv5,
    'conv_7': SpatialConv7,
    'conv_3x3x2': SpatialConv3x3x2,
    'sep_3': SpatialSep3,
    'sep_5': SpatialSep5,
    'affine': SpatialAffine,
}

__all__ = ['SPATIAL_EXCITATION_OPS'] + [cls.__name__ for cls in SPATIAL_EXCITATION_OPS.values()]
