"""CBAM: Convolutional Block Attention Module.

Paper: `CBAM: Convolutional Block Attention Module`, Woo, Park, Lee, Kweon, ECCV 2018 -
https://arxiv.org/abs/1807.06521

``variant='original'`` is the authors' code, Jongchan/attention-module @459efad0
``MODELS/cbam.py`` (``CBAM(gate_channels, 16)``, pool types avg and max) with the
initialisation of ``MODELS/model_resnet.py``; ``variant='timm'`` is timm @aa4b5850
``timm/layers/cbam.py`` ``CbamModule`` (BASELINES_CODE.md §2). ``(B, C, H, W) → (B, C, H, W)``::

    channel gate:  Mc = σ(MLP(GAP x) + MLP(GMP x)),  MLP = Linear(C, Cr) → ReLU → Linear(Cr, C),
                   shared by the two pools;  x1 = x ⊙ Mc
    spatial gate:  Ms = σ(BN(Conv_k×k([max_c x1; mean_c x1])))  (no conv bias, no ReLU);
                   y = x1 ⊙ Ms

==================  ================================  =====================================
                    ``'original'`` (authors)          ``'timm'`` (``CbamModule``)
==================  ================================  =====================================
hidden width Cr     ``C // r``                        ``max(1, round(C / r))`` (half up:
                                                      ``make_divisible(C/r, 1, round_limit=0)``)
MLP                 ``nn.Linear``, biased             1×1 ``nn.Conv2d``, no bias
spatial pooling     ``[max_c; mean_c]``               ``[mean_c; max_c]``
spatial BN          momentum 0.01, init weight 0      momentum 0.1, init weight 1
init                spatial conv Kaiming normal       (the network's: every Conv2d Kaiming
                    (fan_out), every bias 0, BN       normal fan_out, BN weight 1, bias 0)
                    weight 0 so Ms = 0.5; MLP
                    weights: PyTorch's Linear default
parameters          ``2·C·Cr + Cr + C + 2k² + 2``     ``2·C·Cr + 2k² + 2``
==================  ================================  =====================================

With r = 16, k = 7 and ``16 | C`` the authors' block has ``2C²/16 + C/16 + C + 98 + 2``
parameters: CBAM-ResNet-50 has 28,089,624 (ResNet-50 + 2,532,592).

The MLP types follow each reference so that a backbone's generic initialisation (Kaiming for
every Conv2d) treats them as the reference's network does: the authors' ``nn.Linear`` weights
keep PyTorch's default, timm's 1×1 convs get Kaiming.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.registry import MODELS
from torch import Tensor

from ..utils import check_channels
from .base import AFTER_LAST_NORM, AttentionBlock

CBAM_VARIANTS = ('original', 'timm')


@MODELS.register_module()
class CBAM(AttentionBlock):
    """Channel then spatial attention, ``y = (x ⊙ Mc) ⊙ Ms``: ``(B, C, H, W) → (B, C, H, W)``.

    Args:
        in_channels: channels ``C``.
        reduction: ``r`` of the channel MLP (hidden width ``C // r``, or timm's rounding).
        spatial_kernel: ``k``, the odd size of the spatial gate's convolution.
        variant: ``'original'`` (the authors' code and init) or ``'timm'`` (timm's
            ``CbamModule``); see the module docstring.

    The authors' block has ``2·C·(C//r) + C//r + C + 2k² + 2`` parameters (``2C²/16 + C/16 + C
    + 98 + 2`` for r = 16, k = 7, ``16 | C``); timm's ``2·C·Cr + 2k² + 2``.
    """

    _abbr_ = 'cbam'
    position = AFTER_LAST_NORM

    def __init__(self,
                 in_channels: int,
                 reduction: int = 16,
                 spatial_kernel: int = 7,
                 variant: str = 'original'):
        super().__init__()
        self.in_channels = check_channels(in_channels, 'in_channels')
        self.reduction = check_channels(reduction, 'reduction')
        self.spatial_kernel = check_channels(spatial_kernel, 'spatial_kernel')
        if spatial_kernel % 2 == 0:
            raise ValueError(f'spatial_kernel must be odd, got {spatial_kernel!r}')
        if variant not in CBAM_VARIANTS:
            raise ValueError(f'CBAM variant must be one of {", ".join(map(repr, CBAM_VARIANTS))}, '
                             f'got {variant!r}')
        self.variant = variant
        original = variant == 'original'
        if original:
            hidden = in_channels // reduction
            if hidden < 1:
                raise ValueError(f'reduction must be at most in_channels ({in_channels}) so that '
                                 f'the hidden width C // r is positive, got {reduction!r}')
            self.fc1 = nn.Linear(in_channels, hidden)
            self.fc2 = nn.Linear(hidden, in_channels)
        else:
            hidden = max(1, int(in_channels * (1. / reduction) + 0.5))
            self.fc1 = nn.Conv2d(in_channels, hidden, 1, bias=False)
            self.fc2 = nn.Conv2d(hidden, in_channels, 1, bias=False)
        self.hidden_channels = hidden
        self.spatial_conv = nn.Conv2d(
            2, 1, spatial_kernel, padding=(spatial_kernel - 1) // 2, bias=False)
        self.spatial_bn = nn.BatchNorm2d(1, eps=1e-5, momentum=0.01 if original else 0.1)
        if original:
            self.init_weights()

    def init_weights(self) -> None:
        """The authors' init (``model_resnet.py``): spatial conv Kaiming normal (fan_out), every
        bias 0, spatial BN weight 0 (so ``Ms = 0.5``). The MLP weights are left as they are.
        timm's variant keeps what the network's init set."""
        if self.variant != 'original':
            return
        nn.init.kaiming_normal_(self.spatial_conv.weight, mode='fan_out', nonlinearity='relu')
        nn.init.zeros_(self.spatial_bn.weight)
        for bias in (self.spatial_bn.bias, self.fc1.bias, self.fc2.bias):
            nn.init.zeros_(bias)

    def forward(self, x: Tensor) -> Tensor:
        b, c = x.shape[:2]
        # Both pools through the shared MLP as one batch of 2B; a 1x1 conv is a linear map, so
        # both variants' weights are used as (out, in) matrices.
        z = torch.cat([x.mean((2, 3)), x.amax((2, 3))])
        h = F.relu(F.linear(z, self.fc1.weight.view(-1, c), self.fc1.bias))
        logits = F.linear(h, self.fc2.weight.view(c, -1), self.fc2.bias)
        x1 = x * torch.sigmoid(logits[:b] + logits[b:]).view(b, c, 1, 1)

        pools = [x1.amax(1, keepdim=True), x1.mean(1, keepdim=True)]
        if self.variant == 'timm':
            pools.reverse()
        s = self.spatial_bn(self.spatial_conv(torch.cat(pools, 1)))
        return x1 * torch.sigmoid(s)

    def extra_repr(self) -> str:
        return (f'in_channels={self.in_channels}, reduction={self.reduction}, '
                f'spatial_kernel={self.spatial_kernel}, variant={self.variant!r}')
