"""Spatial Group-wise Enhance (SGE), the module that EAN shares.

Paper: `Spatial Group-wise Enhance: Improving Semantic Feature Learning in Convolutional
Networks`, Li, Hu and Yang, arXiv:1905.09646, 2019. Authors' code: implus/PytorchInsight @
87fbb08b, ``classification/models/imagenet/resnet_sge.py`` (class ``SpatialGroupEnhance``).
gbup-group/EAN-efficient-attention-network @ 6ae62311 copies that class verbatim
(``forward_config_share_sge_fbresnet.py``) as the module EAN (Efficient Attention Network, the
search for where to plug one module shared by the blocks of a stage) shares: one SGE per stage,
g = 64, **128 parameters per stage**.

``(B, C, H, W) → (B, C, H, W)``, with ``g = groups`` groups of ``C/g`` channels, per sample and
group ``x_g ∈ R^{C/g × H × W}``::

    t = Σ_c x_g ⊙ GAP(x_g)                  (H, W): similarity of each position to the group mean
    t = (t − mean_hw t) / (std_hw t + 1e-5)  std: unbiased (1/(HW − 1)), as torch's default
    y_g = x_g ⊙ σ(w_g · t + b_g)             w, b ∈ R^g, shape (1, g, 1, 1)

``2g`` parameters (``weight``, ``bias``: the code's names and shapes). Initialisation w = 0,
b = 1, so ``y = σ(1)·x ≈ 0.731·x`` at init, whatever the input.

Placement: after the last BN of a residual block (PytorchInsight's SGE-ResNets: every block;
EAN: the blocks its searched code selects, sharing one module per stage).

Differences from the code: on a 1×1 map the code's unbiased std is NaN (one sample) and so is
its output; here the biased std is used for ``H·W = 1`` (``t`` is 0 either way), which gives
``y = σ(b)·x``. A ``C`` not divisible by ``g`` is a ``ValueError`` naming both. ``reshape``
replaces ``view`` so that channels-last inputs work. The gate is computed in float32 (float64
for float64 inputs) with autocast off and cast back to the input's dtype: the variance of ``t``,
a fourth power of the activations, overflows float16.
"""
import torch
import torch.nn as nn
from mmengine.registry import MODELS
from torch import Tensor

from ..utils import check_channels, compute_dtype
from .base import AttentionBlock


@MODELS.register_module()
class SGE(AttentionBlock):
    """Spatial group-wise enhance of a ``(B, C, H, W)`` tensor (see the module docstring).

    Args:
        in_channels: channels ``C``, divisible by ``groups``.
        groups: ``g`` (the authors use 64 in every stage).
    """

    _abbr_ = 'sge'

    def __init__(self, in_channels: int, groups: int = 64):
        super().__init__()
        self.in_channels = check_channels(in_channels, 'in_channels')
        self.groups = check_channels(groups, 'groups')
        if in_channels % groups:
            raise ValueError(f'SGE: in_channels={in_channels} is not divisible by '
                             f'groups={groups}')
        self.weight = nn.Parameter(torch.zeros(1, groups, 1, 1))
        self.bias = nn.Parameter(torch.ones(1, groups, 1, 1))

    def init_weights(self) -> None:
        nn.init.zeros_(self.weight)
        nn.init.ones_(self.bias)

    def forward(self, x: Tensor) -> Tensor:
        self.check_input(x)
        b, c, h, w = x.shape
        xg = x.reshape(b * self.groups, c // self.groups, h, w)
        dtype = compute_dtype(x.dtype)
        with torch.autocast(x.device.type, enabled=False):
            xf = xg.to(dtype)
            t = (xf * xf.mean((2, 3), keepdim=True)).sum(1).reshape(b * self.groups, h * w)
            t = t - t.mean(1, keepdim=True)
            t = t / (t.std(1, correction=1 if h * w > 1 else 0, keepdim=True) + 1e-5)
            t = t.reshape(b, self.groups, h, w) * self.weight.to(dtype) + self.bias.to(dtype)
            gate = torch.sigmoid(t).to(x.dtype).reshape(b * self.groups, 1, h, w)
        return (xg * gate).reshape(b, c, h, w)

    def extra_repr(self) -> str:
        return f'in_channels={self.in_channels}, groups={self.groups}'
