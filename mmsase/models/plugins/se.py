"""Squeeze-and-excitation (SENet), the baseline block (spec BASELINES.md)."""
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.registry import MODELS
from torch import Tensor

from ..search_space import check_channels


@MODELS.register_module()
class SE(nn.Module):
    """``y = x ⊙ σ(W2 δ(W1 GAP(x) + b1) + b2)``: ``(B, C, H, W) → (B, C, H, W)``.

    Args:
        in_channels: channels ``C``.
        reduction: ``r``; the hidden width is ``max(1, C // r)``. Both FCs are biased, so a
            block has ``2·C·max(1, C//r) + max(1, C//r) + C`` parameters (= 2C²/16 + C/16 + C
            for r = 16, as SENet's ResNets).
    """

    _abbr_ = 'se'

    def __init__(self, in_channels: int, reduction: int = 16):
        super().__init__()
        self.in_channels = check_channels(in_channels, 'in_channels')
        self.reduction = check_channels(reduction, 'reduction')
        hidden = max(1, in_channels // reduction)
        self.fc1 = nn.Conv2d(in_channels, hidden, kernel_size=1, bias=True)
        self.fc2 = nn.Conv2d(hidden, in_channels, kernel_size=1, bias=True)

    def forward(self, x: Tensor) -> Tensor:
        z = x.mean((2, 3), keepdim=True)
        return x * torch.sigmoid(self.fc2(F.relu(self.fc1(z))))

    def extra_repr(self) -> str:
        return f'in_channels={self.in_channels}, reduction={self.reduction}'
