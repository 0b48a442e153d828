"""The "convolution block over the two statistics": a 5-parameter 2→1 fusion.

:class:`StatFusion1d` (per-channel statistics) and :class:`StatFusion2d` (spatial maps) fuse
the mean with a second statistic in ``gap_gmp``, ``gap_std``, ``gap_skew`` (spec §2,
**Decision**: 5 parameters); :class:`StatFusion2d` also fuses the SASE block's two spatial
squeezes (spec §1).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor


class StatFusion1d(nn.Module):
    """Fuse two per-channel statistics into one: ``δ(BN(Conv1d_{2→1,k=1}([a; b])))``.

    Input: two ``(B, C, 1, 1)`` tensors, read as a 2-channel length-C signal ``(B, 2, C)``.
    Output: ``(B, C, 1, 1)``. 5 parameters (conv 2 + bias 1, BN 2).
    **Decision** (spec §2, items 5–7): one shared 2→1 fusion instead of a ``2C → C`` 1×1 conv.
    In training mode BN normalises over ``B·C`` values, so a batch of one is fine for ``C > 1``.

    The 1×1 conv over two channels is evaluated as ``w0·a + w1·b + bias`` — the same maths
    without stacking the inputs or calling a convolution kernel for 2 input channels.
    """

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(2, 1, kernel_size=1, bias=True)
        self.bn = nn.BatchNorm1d(1)

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        y = _combine_two(a, b, self.conv)
        return F.relu(self.bn(y.reshape(y.shape[0], 1, -1))).view(y.shape)


class StatFusion2d(nn.Module):
    """Fuse two spatial maps into one: ``δ(BN(Conv2d_{2→1,k=1}([a; b])))``.

    Input: two ``(B, 1, H, W)`` maps; output ``(B, 1, H, W)``. 5 parameters. Used by the
    spatial ``gap_gmp``/``gap_std``/``gap_skew`` ops and by the SASE block to fuse
    ``[ss1(x), ss2(x')]`` (spec §1). Evaluated as :class:`StatFusion1d` is.
    """

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size=1, bias=True)
        self.bn = nn.BatchNorm2d(1)

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        return F.relu(self.bn(_combine_two(a, b, self.conv)))


def _combine_two(a: Tensor, b: Tensor, conv: nn.Module) -> Tensor:
    """``conv([a; b])`` for a 2→1 conv with a 1-element kernel: ``w0·a + w1·b + bias``."""
    w = conv.weight.reshape(2)
    return torch.addcmul(a * w[0] + conv.bias, b, w[1])
