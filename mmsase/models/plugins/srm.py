"""SRM: Style-based Recalibration Module.

Paper: `SRM: A Style-based Recalibration Module for Convolutional Neural Networks`
(Lee, Kim, Nam, ICCV 2019, https://arxiv.org/abs/1903.10829).
Authors' code: hyunjaelee410/style-based-recalibration-module @f6221c77,
``models/recalibration_modules.py`` (``SRMLayer``), ``models/resnet.py``, ``imagenet.py``.

Shapes: ``x (B, C, H, W) → y (B, C, H, W)``, ``H·W ≥ 2``::

    μ_c = mean_hw x_c
    s_c = sqrt(var_hw(x_c, unbiased) + 1e-5)       style pooling, t = [μ, s] (B, C, 2)
    z_c = w_c1 μ_c + w_c2 s_c                      channel-wise FC ("CFC"), w = cfc (C, 2)
    y   = x ⊙ σ(BN(z))                             BatchNorm2d(C) on (B, C, 1, 1)

What the authors' code does that the paper leaves out:

* the variance is torch's default, **unbiased** (divides by ``H·W − 1``), and ``1e-5`` is added
  before the square root (the 2019-08-02 fix; before it the code used ``std()``, no eps);
* ``cfc`` is initialised to **0**, the BN to weight 1, bias 0, so in train mode ``z = 0``,
  ``BN(z) = 0`` and the block returns exactly ``0.5·x`` at initialisation;
* ``cfc``, ``bn.weight`` and ``bn.bias`` are trained with **weight decay 0** (``imagenet.py``
  tags them ``srm_param`` and gives them their own param group). Here they are the block's
  parameters ``cfc``, ``bn.weight`` and ``bn.bias`` — all its parameters; where a backbone
  names the block ``srm`` (its ``_abbr_``), mmengine's
  ``paramwise_cfg=dict(custom_keys={'.srm.': dict(decay_mult=0.)})`` reproduces that;
* it sits after the last BN of the residual branch, before the identity addition.

``H·W = 1`` leaves the unbiased variance undefined (the authors' code returns NaN there and
the NaN spreads through the BN to the whole batch); this block raises a ``ValueError`` instead.

The statistics are computed in float32 (or float64 for float64 inputs) with autocast off: the
variance of float16 activations loses too much. The gate is cast back to the input's dtype.

Parameters: ``4C`` (``cfc`` 2C, BN affine 2C). SRM-ResNet-50: 25,617,448 (+60,416).
"""
import torch
import torch.nn as nn
from mmengine.registry import MODELS
from torch import Tensor

from ..utils import check_channels, compute_dtype
from .base import AttentionBlock


@MODELS.register_module()
class SRM(AttentionBlock):
    """``y = x ⊙ σ(BN(w_1 ⊙ mean_hw x + w_2 ⊙ sqrt(var_hw x + 1e-5)))`` (unbiased variance).

    Args:
        in_channels: channels ``C``.

    Parameters: ``cfc (C, 2)`` (init 0) and ``bn`` (``BatchNorm2d(C)``), ``4C`` in all. The
    authors train all three with weight decay 0 (see the module docstring).
    """

    _abbr_ = 'srm'
    #: the parameters the authors train with weight decay 0 (all of them).
    no_weight_decay = ('cfc', 'bn.weight', 'bn.bias')
    #: added to the unbiased variance before the square root (authors' code).
    eps = 1e-5

    def __init__(self, in_channels: int):
        super().__init__()
        self.in_channels = check_channels(in_channels, 'in_channels')
        self.cfc = nn.Parameter(torch.zeros(in_channels, 2))
        self.bn = nn.BatchNorm2d(in_channels)

    def init_weights(self) -> None:
        """``cfc = 0``, BN weight 1 and bias 0 (authors' init)."""
        with torch.no_grad():
            self.cfc.zero_()
        nn.init.ones_(self.bn.weight)
        nn.init.zeros_(self.bn.bias)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[2] * x.shape[3] < 2:
            raise ValueError('SRM needs a (B, C, H, W) input with H·W ≥ 2 (its unbiased '
                             f'variance divides by H·W − 1), got shape {tuple(x.shape)}')
        with torch.autocast(x.device.type, enabled=False):
            flat = x.flatten(2).to(compute_dtype(x.dtype))
            t = torch.stack((flat.mean(2), (flat.var(2) + self.eps).sqrt()), 2)  # (B, C, 2)
        if not torch.is_autocast_enabled(x.device.type):
            t = t.to(x.dtype)
        z = (t * self.cfc).sum(2)[:, :, None, None]
        return x * torch.sigmoid(self.bn(z)).to(x.dtype)

    def extra_repr(self) -> str:
        return f'in_channels={self.in_channels}'
