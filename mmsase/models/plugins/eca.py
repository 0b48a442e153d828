"""ECA: Efficient Channel Attention.

Paper: `ECA-Net: Efficient Channel Attention for Deep Convolutional Neural Networks`, Wang, Wu,
Zhu, Li, Zuo, Hu, CVPR 2020 - https://arxiv.org/abs/1910.03151

Reference code (BASELINES_CODE.md §3): BangguWu/ECANet @b332f6b3 ``models/eca_module.py``
(``eca_layer``) and timm @aa4b5850 ``timm/layers/eca.py`` (``EcaModule``).
``(B, C, H, W) → (B, C, H, W)``::

    z = GAP(x) viewed as (B, 1, C);  a = σ(Conv1d_k(z))  (1 → 1 channel, padding (k-1)/2,
    no bias);  y = x ⊙ a

``k`` parameters; the Conv1d keeps PyTorch's default init (Kaiming uniform, a = √5), which is
what the authors' ResNet init leaves it with (it touches only Conv2d and BN).

The kernel size: the authors' ``eca_module.py`` takes ``k`` as an argument and their ResNet-50
is trained with per-stage ``k = (3, 5, 5, 7)`` (``--ksize 3557``: +80 parameters, 25,557,112).
The paper's formula (:func:`eca_kernel_size`, as timm computes it)::

    t = int(|(log2 C + b) / γ|);  k = t if t is odd else t + 1;  k = max(k, 3)

gives ``(5, 5, 5, 7)`` for ResNet-50's stage widths 256/512/1024/2048 (+86). ``kernel_size=None``
uses the formula; for the authors' kernels a backbone passes them per stage::

    attention=dict(type='mmsase.ECA', stage_args=dict(kernel_size=(3, 5, 5, 7)))

SEM's copy of the formula has no ``max(·, 3)`` clamp (``min_size=1``); the two differ only for
``C < 8`` (``C = 4``: 1 against 3).
"""
import math
from numbers import Real
from typing import Optional

import torch
import torch.nn as nn
from mmengine.registry import MODELS
from torch import Tensor

from ..utils import check_channels
from .base import AFTER_LAST_NORM, AttentionBlock


def eca_kernel_size(channels: int, gamma: float = 2, beta: float = 1, min_size: int = 3) -> int:
    """The paper's adaptive kernel size: the odd ``k`` nearest above ``|(log2 C + b) / γ|``.

    ``t = int(|(log2 C + b) / γ|)``, ``k = t`` if ``t`` is odd else ``t + 1``, then at least
    ``min_size`` (3 as timm's ``EcaModule``; 1 as SEM's copy, which has no clamp). For
    C = 64, 128, 256, 512, 1024, 2048: 3, 5, 5, 5, 5, 7.
    """
    check_channels(channels, 'channels')
    t = int(abs((math.log2(channels) + beta) / gamma))
    return max(t if t % 2 else t + 1, min_size)


@MODELS.register_module()
class ECA(AttentionBlock):
    """``y = x ⊙ σ(Conv1d_k(GAP(x)))`` across channels: ``(B, C, H, W) → (B, C, H, W)``.

    Args:
        in_channels: channels ``C``.
        kernel_size: ``k``, a positive odd int, or ``None`` for the paper's formula
            (:func:`eca_kernel_size` with ``gamma`` and ``beta``). The authors' ResNet-50 uses
            (3, 5, 5, 7) per stage, the formula (5, 5, 5, 7).
        gamma, beta: ``γ`` and ``b`` of the formula (used only when ``kernel_size`` is None).

    ``k`` parameters (no bias).
    """

    _abbr_ = 'eca'
    position = AFTER_LAST_NORM

    def __init__(self,
                 in_channels: int,
                 kernel_size: Optional[int] = None,
                 gamma: float = 2,
                 beta: float = 1):
        super().__init__()
        self.in_channels = check_channels(in_channels, 'in_channels')
        if kernel_size is None:
            if isinstance(gamma, bool) or not isinstance(gamma, Real) or not gamma > 0:
                raise ValueError(f'gamma must be a positive number, got {gamma!r}')
            if isinstance(beta, bool) or not isinstance(beta, Real) or not math.isfinite(beta):
                raise ValueError(f'beta must be a finite number, got {beta!r}')
            kernel_size = eca_kernel_size(in_channels, gamma, beta)
        elif (isinstance(kernel_size, bool) or not isinstance(kernel_size, int)
              or kernel_size < 1 or kernel_size % 2 == 0):
            raise ValueError(f'kernel_size must be a positive odd int or None, got {kernel_size!r}')
        self.kernel_size = kernel_size
        self.conv = nn.Conv1d(1, 1, kernel_size, padding=(kernel_size - 1) // 2, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        b, c = x.shape[:2]
        a = torch.sigmoid(self.conv(x.mean((2, 3)).view(b, 1, c)))
        return x * a.view(b, c, 1, 1)

    def extra_repr(self) -> str:
        return f'in_channels={self.in_channels}, kernel_size={self.kernel_size}'
