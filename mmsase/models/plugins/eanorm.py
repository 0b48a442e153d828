"""Normalisation-guided attention ("EAN" in the SASE paper's tables; here EANorm).

Paper: `EAN: An Efficient Attention Module Guided by Normalization for Deep Neural Networks`,
Li, Li and Wen, AAAI 2024. Named EANorm here so that it is not confused with EAN, the Efficient
Attention Network of gbup-group, which searches where to plug a shared module (see
:class:`~mmsase.models.plugins.sge.SGE`).

Code: Lihahaah/EAN @ 502bc794, ``ean_module.py`` (its only code file, class ``ean_module``). The
repository's README names the paper but not its authors, so **that the code is the authors' is
not confirmed**; the paper's full training code is not public.

``(B, C, H, W) → (B, C, H, W)``, with ``g = groups`` and ``c = C/g`` channels per group::

    x → (B·g, c, H, W)
    x̂ = (x − mean_hw x) / sqrt(var_hw x + ε)     per channel and sample (biased variance)
    s = w ⊙ x̂ + b                                the GroupNorm affine, w, b ∈ R^c
    l2: n = α ⊙ w / sqrt(mean_c(w²) + ε)         l1: n = α ⊙ w / (mean_c |w| + ε)
    y = x ⊙ σ(s ⊙ n + δ)                          α, δ ∈ R^c, reshaped back to (B, C, H, W)

The normalisation is the code's ``nn.GroupNorm(num_groups=c, num_channels=c)``: as many groups as
channels, i.e. an instance normalisation over H·W. The four parameter vectors have ``c`` entries
each and are **shared by the g groups**: ``4C/g`` parameters (GroupNorm ``weight``/``bias`` under
``groupnorm``, ``alpha`` and ``delta`` of shape ``(1, c, 1, 1)``, as in the code, so that its
state dicts load). Initialisation w = 1, b = 0, α = δ = 0, so ``y = x/2`` at init.

Placement: not in the public code; here after the last BN of a residual block, like SE. One per
ResNet-50 block with g = 16 adds 3,776 parameters.

Differences from the code: ``eps`` (1e-5 there, both in the GroupNorm and in ``n``) is an
argument; a bad ``mode`` or a ``C`` not divisible by ``g`` is a ``ValueError`` (the code asserts
the mode and fails in ``view`` on the channels); ``reshape`` replaces ``view`` so that
channels-last inputs work; the gate is computed in float32 (float64 for float64 inputs) with
autocast off and cast back to the input's dtype (``self.groupnorm`` holds the parameters; the
normalisation is its functional form on the float32 input).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.registry import MODELS
from torch import Tensor

from ..utils import check_channels, compute_dtype
from .base import AttentionBlock

EANORM_MODES = ('l2', 'l1')


@MODELS.register_module()
class EANorm(AttentionBlock):
    """Normalisation-guided attention of a ``(B, C, H, W)`` tensor (see the module docstring).

    Args:
        in_channels: channels ``C``, divisible by ``groups``.
        groups: ``g``, the number of channel groups that share the parameters.
        mode: ``'l2'`` (the code's default) or ``'l1'``: how ``w`` is normalised.
        eps: ``ε`` of the instance normalisation and of the weight normalisation.
    """

    _abbr_ = 'eanorm'

    def __init__(self, in_channels: int, groups: int = 16, mode: str = 'l2',
                 eps: float = 1e-5):
        super().__init__()
        self.in_channels = check_channels(in_channels, 'in_channels')
        self.groups = check_channels(groups, 'groups')
        if in_channels % groups:
            raise ValueError(f'EANorm: in_channels={in_channels} is not divisible by '
                             f'groups={groups}')
        if mode not in EANORM_MODES:
            raise ValueError(f'EANorm mode must be one of {EANORM_MODES}, got {mode!r}')
        if not eps > 0:
            raise ValueError(f'EANorm eps must be positive, got {eps!r}')
        self.mode = mode
        self.eps = eps
        width = in_channels // groups
        self.groupnorm = nn.GroupNorm(width, width, eps=eps, affine=True)
        self.alpha = nn.Parameter(torch.zeros(1, width, 1, 1))
        self.delta = nn.Parameter(torch.zeros(1, width, 1, 1))

    def init_weights(self) -> None:
        nn.init.ones_(self.groupnorm.weight)
        nn.init.zeros_(self.groupnorm.bias)
        nn.init.zeros_(self.alpha)
        nn.init.zeros_(self.delta)

    def forward(self, x: Tensor) -> Tensor:
        self.check_input(x)
        b, c, h, w = x.shape
        width = c // self.groups
        x = x.reshape(b * self.groups, width, h, w)
        dtype = compute_dtype(x.dtype)
        with torch.autocast(x.device.type, enabled=False):
            weight, bias, alpha, delta = (p.to(dtype) for p in (
                self.groupnorm.weight, self.groupnorm.bias, self.alpha, self.delta))
            xs = F.group_norm(x.to(dtype), width, weight, bias, self.groupnorm.eps)
            weight = weight.view(1, -1, 1, 1)
            if self.mode == 'l2':
                scale = (weight.pow(2).mean(1, keepdim=True) + self.eps).sqrt()
            else:
                scale = weight.abs().mean(1, keepdim=True) + self.eps
            gate = torch.sigmoid(xs * (alpha * (weight / scale)) + delta)
        return (x * gate.to(x.dtype)).reshape(b, c, h, w)

    def extra_repr(self) -> str:
        return (f'in_channels={self.in_channels}, groups={self.groups}, mode={self.mode!r}, '
                f'eps={self.eps}')
