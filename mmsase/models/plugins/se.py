"""Squeeze-and-Excitation (SE), the baseline block.

Paper: `Squeeze-and-Excitation Networks`, Hu, Shen, Sun, CVPR 2018 -
https://arxiv.org/abs/1709.01507

Reference code (BASELINES_CODE.md §1):

* SENet as ported by Cadene/pretrained-models.pytorch @1dd92e91 ``pretrainedmodels/models/
  senet.py`` (``SEModule``): hidden width ``C // r``;
* mmpretrain @ee7f2e88 ``mmpretrain/models/utils/se_layer.py`` (``SELayer``): hidden width
  ``make_divisible(C // r, 8)``;
* timm @aa4b5850 ``timm/layers/squeeze_excite.py`` (``SEModule``): hidden width
  ``make_divisible(C / r, 8, round_limit=0)``.

All three have biased FCs, ReLU and a sigmoid gate, PyTorch's default init and sit after the
last BN of a residual block. ``(B, C, H, W) → (B, C, H, W)``::

    z = GAP(x) ∈ (B, C);  a = σ(W2 δ(W1 z + b1) + b2);  y = x ⊙ a

with ``W1: C → Cr`` and ``W2: Cr → C``; ``2·C·Cr + Cr + C`` parameters (``2C²/16 + C/16 + C``
for r = 16 when 16 divides C).

The hidden width is where they differ. ``divisor=1`` (the default) is SENet's ``max(1, C // r)``;
``divisor=8`` is mmpretrain's ``make_divisible(C // r, 8)``. The two agree for ResNet-50's
stage widths (256/512/1024/2048 → 16/32/64/128) but not for small ``C``: ``C = 64`` (a CIFAR
ResNet-164's first stage) gives 4 with SENet and 8 with mmpretrain and timm. timm's rounding
equals mmpretrain's except where mmpretrain's "no more than 10% below" rule adds a divisor
(timm passes ``round_limit=0``): ``C // 16`` in {9, 10, 11, 18, 19, 27}, i.e. ``C`` in
144–191, 288–319 and 432–447, where mmpretrain (and ``divisor=8`` here) is one divisor wider.
"""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.registry import MODELS
from torch import Tensor

from ..utils import check_channels
from .base import AFTER_LAST_NORM, AttentionBlock


def make_divisible(value: int,
                   divisor: int,
                   min_value: Optional[int] = None,
                   min_ratio: float = 0.9) -> int:
    """``value`` rounded to the nearest multiple of ``divisor``, as mmpretrain's helper.

    The result is at least ``min_value`` (default ``divisor``) and, when rounding down would
    lose more than ``1 - min_ratio`` of ``value``, one ``divisor`` more. With ``divisor=1`` it
    is ``max(1, value)`` for an int ``value``.
    """
    if min_value is None:
        min_value = divisor
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < min_ratio * value:
        rounded += divisor
    return rounded


@MODELS.register_module()
class SE(AttentionBlock):
    """``y = x ⊙ σ(W2 δ(W1 GAP(x) + b1) + b2)``: ``(B, C, H, W) → (B, C, H, W)``.

    Args:
        in_channels: channels ``C``.
        reduction: ``r``.
        divisor: the hidden width is ``make_divisible(C // r, divisor)``: ``max(1, C // r)``
            for 1 (SENet, the default), mmpretrain's ``SELayer`` for 8. Both FCs are biased, so
            a block has ``2·C·Cr + Cr + C`` parameters (``2C²/16 + C/16 + C`` for r = 16 and
            ``16 | C``, as SENet's ResNets).
    """

    _abbr_ = 'se'
    position = AFTER_LAST_NORM

    def __init__(self, in_channels: int, reduction: int = 16, divisor: int = 1):
        super().__init__()
        self.in_channels = check_channels(in_channels, 'in_channels')
        self.reduction = check_channels(reduction, 'reduction')
        self.divisor = check_channels(divisor, 'divisor')
        hidden = make_divisible(in_channels // reduction, divisor)
        self.fc1 = nn.Conv2d(in_channels, hidden, kernel_size=1, bias=True)
        self.fc2 = nn.Conv2d(hidden, in_channels, kernel_size=1, bias=True)

    def forward(self, x: Tensor) -> Tensor:
        z = x.mean((2, 3), keepdim=True)
        return x * torch.sigmoid(self.fc2(F.relu(self.fc1(z))))

    def extra_repr(self) -> str:
        s = f'in_channels={self.in_channels}, reduction={self.reduction}'
        if self.divisor != 1:
            s += f', divisor={self.divisor}'
        return s
