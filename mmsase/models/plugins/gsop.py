"""GSoP: channel-wise global second-order pooling attention (GSoP-Net1).

Paper: `Global Second-order Pooling Convolutional Networks` (Gao, Xie, Wang, Li, CVPR 2019,
https://arxiv.org/abs/1811.12006).
Authors' code: ZilinGao/Global-Second-order-Pooling-Convolutional-Networks @662a6996,
``torchvision/models/resnet.py`` (``Bottleneck.chan_att``, ``attention='1'``),
``torchvision/models/MPNCOV/python/MPNCOV.py`` (``CovpoolLayer``), ``main.py``.

Shapes: ``x (B, C, H, W) → y (B, C, H, W)``; ``d`` = ``reduced_channels`` (128), ``s`` =
``reduction_stride``, ``H' W'`` the size after the strided 1×1 conv, ``M = H'·W'``::

    a   = ReLU(x)                                          not in place: x is gated below
    f   = ReLU(BN(Conv1x1_s(a)))                           C → d, bias   (B, d, H', W')
    Σ   = X Ī Xᵀ,  X = f as (d, M),  Ī = (1/M)(I − 11ᵀ/M)  biased covariance  (B, d, d)
    r   = RowConv(BN_d(Σ as (B, d, d, 1)))                 Conv2d(d, 4d, (d, 1), groups=d,
                                                           bias): 4 values per row (B, 4d)
    y   = x ⊙ σ(Conv1x1(r))                                4d → C, bias

What the authors' code does that the paper and the spec leave out: the ReLU on the input, the
stride 2 of the reduction conv in the first stage (``planes == 64``; pass
``reduction_stride=2`` there, 1 elsewhere), the BN over the ``d`` rows of ``Σ`` before the
row-wise conv, and **no** non-linearity between the row-wise conv and the last 1×1 conv
(the README speaks of "linear convolution and non-linear activation"). GSoP-Net1 puts the block
only in the **last residual block of each stage** (``blocks = 'last'``), after its last BN,
and also makes stage 4 stride 1 (a backbone setting, not the block's).

The row-wise conv is computed as a per-row product with its kernel (the same numbers as the
grouped conv with a ``(d, 1)`` kernel, much faster); its weights keep the conv's layout, so the
authors' checkpoints load (sub-module names as theirs). The covariance is computed in float32
(float64 for float64 inputs) with autocast off, as the authors' float32 training did: centred
products of float16 activations lose most of their bits. Init (authors'): Kaiming normal
(fan_out, ReLU) on every conv weight, BN weight 1 and bias 0, conv biases PyTorch's default.

Parameters: ``5dC + C + 4d² + 9d`` = ``641·C + 66,688`` at d = 128. GSoP-Net1 ResNet-50 (four
blocks, C = 256, 512, 1024, 2048): 28,285,224 (+2,728,192).
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.registry import MODELS
from torch import Tensor

from ..utils import check_channels, compute_dtype
from .base import LAST_BLOCK, AttentionBlock


@MODELS.register_module()
class GSoP(AttentionBlock):
    """Channel GSoP attention: ``y = x ⊙ σ(W₂ RowConv(BN(Cov(δ(BN(W₁ δ(x)))))) + b₂)``.

    Args:
        in_channels: channels ``C``.
        reduced_channels: ``d``, the channels whose ``d × d`` covariance is pooled (128).
        reduction_stride: stride of the 1×1 reduction conv; the authors use 2 in the first
            stage of a ResNet (``planes == 64``), 1 in the others.
    """

    _abbr_ = 'gsop'
    blocks = LAST_BLOCK

    def __init__(self, in_channels: int, reduced_channels: int = 128, reduction_stride: int = 1):
        super().__init__()
        self.in_channels = check_channels(in_channels, 'in_channels')
        self.reduced_channels = d = check_channels(reduced_channels, 'reduced_channels')
        self.reduction_stride = check_channels(reduction_stride, 'reduction_stride')
        self.conv_for_DR = nn.Conv2d(in_channels, d, 1, stride=reduction_stride, bias=True)
        self.bn_for_DR = nn.BatchNorm2d(d)
        self.row_bn = nn.BatchNorm2d(d)
        self.row_conv_group = nn.Conv2d(d, 4 * d, kernel_size=(d, 1), groups=d, bias=True)
        self.fc_adapt_channels = nn.Conv2d(4 * d, in_channels, kernel_size=1, bias=True)
        self.init_weights()

    def init_weights(self) -> None:
        """Kaiming normal (fan_out, ReLU) conv weights, PyTorch-default conv biases
        (``U(±1/sqrt(fan_in))``), BN weight 1 and bias 0 — the authors' ``ResNet.__init__``."""
        for conv in (self.conv_for_DR, self.row_conv_group, self.fc_adapt_channels):
            nn.init.kaiming_normal_(conv.weight, mode='fan_out', nonlinearity='relu')
            # Backbones zero conv biases; the authors never touch them.
            fan_in = conv.weight[0].numel()
            nn.init.uniform_(conv.bias, -1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in))
        for bn in (self.bn_for_DR, self.row_bn):
            nn.init.ones_(bn.weight)
            nn.init.zeros_(bn.bias)

    def covariance(self, f: Tensor) -> Tensor:
        """``(B, d, H', W') → (B, d, d)``: biased covariance over the ``H'·W'`` positions, in
        float32 or better with autocast off; returned in float32 under autocast, else in
        ``f``'s dtype."""
        with torch.autocast(f.device.type, enabled=False):
            flat = f.flatten(2).to(compute_dtype(f.dtype))
            flat = flat - flat.mean(2, keepdim=True)
            cov = torch.bmm(flat, flat.transpose(1, 2)) / flat.shape[2]
        return cov if torch.is_autocast_enabled(f.device.type) else cov.to(f.dtype)

    def forward(self, x: Tensor) -> Tensor:
        d = self.reduced_channels
        f = F.relu(self.bn_for_DR(self.conv_for_DR(F.relu(x))))
        s = self.row_bn(self.covariance(f).unsqueeze(-1)).squeeze(-1)  # (B, d, d), BN per row
        w = self.row_conv_group.weight.view(d, 4, d)  # out channel 4i + k reads row i
        r = torch.einsum('bij,ikj->bik', s, w).reshape(-1, 4 * d) + self.row_conv_group.bias
        att = self.fc_adapt_channels(r[:, :, None, None])
        return x * torch.sigmoid(att).to(x.dtype)

    def extra_repr(self) -> str:
        return (f'in_channels={self.in_channels}, reduced_channels={self.reduced_channels}, '
                f'reduction_stride={self.reduction_stride}')
