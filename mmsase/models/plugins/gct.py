"""Gated Channel Transformation (GCT).

Paper: `Gated Channel Transformation for Visual Recognition`, Yang, Zhu, Wu and Yang, CVPR 2020.
Authors' code: z-x-yang/GCT @ 68983edd, ``PyTorch/GCT.py`` (the module), ``PyTorch/resnet.py``
(placement), ``PyTorch/main.py`` (optimiser).

``(B, C, H, W) → (B, C, H, W)``, one ``(1, C, 1, 1)`` parameter each of ``α``, ``γ``, ``β``::

    l2:  e = α ⊙ sqrt(Σ_hw x² + ε)      n = γ / sqrt(mean_c(e²) + ε)
    l1:  e = α ⊙ Σ_hw |x|               n = γ / (mean_c |e| + ε)
         (Σ_hw x when ``after_relu``: the input is then non-negative already)
    y = x ⊙ (1 + tanh(e ⊙ n + β))

Initialisation α = 1, γ = β = 0: ``n = 0`` and the gate is exactly 1, so a fresh GCT is the exact
identity (not merely close to it). ``3C`` parameters.

Placement: the authors put a GCT **before every convolution**, not after the last BN: before the
stem conv (``GCT(3)``), before conv1, conv2 and conv3 of every bottleneck and before the
downsample conv (their TensorFlow ``_conv2d_impl`` does the same for every conv). GCT-ResNet-50
so placed has 25,624,625 parameters (ResNet-50 + 67,593). ``positions`` also allows
``after_last_norm`` for users who want to try it as an ordinary plug-in.

Differences from a plain reading of the paper, from the authors' code:

* their ResNet is MSRA style (the stride in the first 1×1 conv of a bottleneck, not the 3×3);
* ``main.py`` trains β with weight decay 0 (SGD, Nesterov); give β ``decay_mult=0`` in the
  optimiser's ``paramwise_cfg`` (``custom_keys={'.beta': dict(decay_mult=0.)}``) to match;
* an unknown ``mode`` makes their code print and exit; here it is a ``ValueError``;
* the gate is computed in float32 (float64 for float64 inputs) with autocast off, and cast back
  to the input's dtype: ``Σ_hw x²`` of ordinary activations overflows float16.
"""
import torch
import torch.nn as nn
from mmengine.registry import MODELS
from torch import Tensor

from ..utils import check_channels, compute_dtype
from .base import AFTER_LAST_NORM, BEFORE_CONV, AttentionBlock

GCT_MODES = ('l2', 'l1')


@MODELS.register_module()
class GCT(AttentionBlock):
    """Gated channel transformation of a ``(B, C, H, W)`` tensor (see the module docstring).

    Args:
        in_channels: channels ``C``.
        epsilon: ``ε`` of the embedding (l2) and of the normalisation.
        mode: ``'l2'`` (the authors' default) or ``'l1'``.
        after_relu: l1 mode only: the input is non-negative, so ``Σ_hw x`` replaces
            ``Σ_hw |x|``.
    """

    _abbr_ = 'gct'
    position = BEFORE_CONV
    positions = (BEFORE_CONV, AFTER_LAST_NORM)

    def __init__(self, in_channels: int, epsilon: float = 1e-5, mode: str = 'l2',
                 after_relu: bool = False):
        super().__init__()
        self.in_channels = check_channels(in_channels, 'in_channels')
        if mode not in GCT_MODES:
            raise ValueError(f'GCT mode must be one of {GCT_MODES}, got {mode!r}')
        if not epsilon > 0:
            raise ValueError(f'GCT epsilon must be positive, got {epsilon!r}')
        self.epsilon = epsilon
        self.mode = mode
        self.after_relu = after_relu
        self.alpha = nn.Parameter(torch.ones(1, in_channels, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, in_channels, 1, 1))
        self.beta = nn.Parameter(torch.zeros(1, in_channels, 1, 1))

    def init_weights(self) -> None:
        nn.init.ones_(self.alpha)
        nn.init.zeros_(self.gamma)
        nn.init.zeros_(self.beta)

    def forward(self, x: Tensor) -> Tensor:
        self.check_input(x)
        dtype = compute_dtype(x.dtype)
        with torch.autocast(x.device.type, enabled=False):
            xf = x.to(dtype)
            alpha, gamma, beta = (p.to(dtype) for p in (self.alpha, self.gamma, self.beta))
            if self.mode == 'l2':
                embedding = (xf.pow(2).sum((2, 3), keepdim=True) + self.epsilon).sqrt() * alpha
                norm = gamma / (embedding.pow(2).mean(1, keepdim=True) + self.epsilon).sqrt()
            else:
                pooled = xf if self.after_relu else xf.abs()
                embedding = pooled.sum((2, 3), keepdim=True) * alpha
                norm = gamma / (embedding.abs().mean(1, keepdim=True) + self.epsilon)
            gate = 1. + torch.tanh(embedding * norm + beta)
        return x * gate.to(x.dtype)

    def extra_repr(self) -> str:
        s = f'in_channels={self.in_channels}, epsilon={self.epsilon}, mode={self.mode!r}'
        return s + (', after_relu=True' if self.after_relu else '')
