"""AutoLA's nine primitives: the attention operations an edge of HOGA chooses from.

As btma48/AutoLA ``operations.py`` and ``genotypes.py`` (``PRIMITIVES``, commit 49c1e57f),
each on one group's ``C`` channels, shape-preserving ``(B, C, H, W) → (B, C, H, W)``:

=========================  ==================================================================
primitive                  output
=========================  ==================================================================
``none``                   ``0``
``skip_connect``           ``x``
``sep_conv_3x3``           ``x ⊙ σ(BN(pw(dw3(δ(BN(pw(dw3(x))))))))`` (C → C)
``dil_conv_3x3``           ``x ⊙ σ(BN(pw(dw3_dil2(x))))``
``sep_conv_3x3_spatial``   ``x ⊙ σ(BN(pw(dw3(δ(BN(pw(dw3(p))))))))`` (2 → 2 → 1 channels),
                           ``p = [max_c x, mean_c x]``
``dil_conv_3x3_spatial``   ``x ⊙ σ(BN(conv1x1(conv3x3_dil2(p))))`` (2 → 1 → 1)
``SE``                     ``x ⊙ σ(W2 δ(W1 GAP(x)))``, ``C → C/4 → C``, no biases
``SE_A_M``                 ``x ⊙ σ(f(GAP(x)) + f(GMP(x)))``, ``f = W2 δ(W1 ·)``, C/4, no biases
``CBAM``                   CBAM's channel gate (shared MLP C → C/4 → C with biases, on GAP and
                           GMP) then its spatial gate (7×7 conv on ``[max, mean]``, BN, σ)
=========================  ==================================================================

``dw``: depthwise, ``pw``: pointwise (1×1) convolution, all without bias; ``δ`` ReLU. The BNs
of the convolutional primitives are affine in the evaluated block and not affine in the
search (the authors' ``OPS[name](C, stride, affine)``); CBAM's BN (momentum 0.01) is always
affine. Names are the authors', so their genotypes read unchanged.
"""
import warnings
from typing import Callable, Dict

import torch
import torch.nn as nn
from torch import Tensor

__all__ = ['PRIMITIVES', 'OPS', 'build_primitive']


def channel_pool(x: Tensor) -> Tensor:
    """``[max over channels, mean over channels]``: ``(B, C, H, W) → (B, 2, H, W)``."""
    return torch.cat([x.amax(dim=1, keepdim=True), x.mean(dim=1, keepdim=True)], dim=1)


def separable_stack(channels: int, out_channels: int, affine: bool) -> nn.Sequential:
    """dw3-pw-BN-ReLU-dw3-pw-BN (the authors' ``SepConv`` without its sigmoid)."""
    return nn.Sequential(
        nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=False),
        nn.Conv2d(channels, channels, 1, bias=False),
        nn.BatchNorm2d(channels, affine=affine),
        nn.ReLU(),
        nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=False),
        nn.Conv2d(channels, out_channels, 1, bias=False),
        nn.BatchNorm2d(out_channels, affine=affine))


class Zero(nn.Module):
    """``none``: zeros of the input's shape (its weight in a mixture still competes)."""

    def forward(self, x: Tensor) -> Tensor:
        return x.mul(0.)


class SepConvGate(nn.Module):
    """``sep_conv_3x3``: a per-element gate from two separable 3×3 convolutions."""

    def __init__(self, channels: int, affine: bool = True):
        super().__init__()
        self.op = separable_stack(channels, channels, affine)

    def forward(self, x: Tensor) -> Tensor:
        return x * self.op(x).sigmoid()


class DilConvGate(nn.Module):
    """``dil_conv_3x3``: a per-element gate from a dilated (2) depthwise 3×3 and a 1×1."""

    def __init__(self, channels: int, affine: bool = True):
        super().__init__()
        self.op = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=2, dilation=2, groups=channels,
                      bias=False),
            nn.Conv2d(channels, channels, 1, bias=False),
            nn.BatchNorm2d(channels, affine=affine))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.op(x).sigmoid()


class SepConvSpatialGate(nn.Module):
    """``sep_conv_3x3_spatial``: a spatial map from the separable stack on the channel pool."""

    def __init__(self, channels: int, affine: bool = True):
        super().__init__()
        self.op = separable_stack(2, 1, affine)

    def forward(self, x: Tensor) -> Tensor:
        return x * self.op(channel_pool(x)).sigmoid()


class DilConvSpatialGate(nn.Module):
    """``dil_conv_3x3_spatial``: a spatial map from a dilated 3×3 (2 → 1) and a 1×1 on the
    channel pool."""

    def __init__(self, channels: int, affine: bool = True):
        super().__init__()
        self.op = nn.Sequential(
            nn.Conv2d(2, 1, 3, padding=2, dilation=2, bias=False),
            nn.Conv2d(1, 1, 1, bias=False),
            nn.BatchNorm2d(1, affine=affine))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.op(channel_pool(x)).sigmoid()


def bias_free_mlp(channels: int, reduction: int) -> nn.Sequential:
    """``Linear(C, C // r) → ReLU → Linear(C // r, C)``, no biases. ``C // r`` may be 0
    (AutoLA's CIFAR ResNet-20 builds ``SE(16 // 4, reduction=8)``): the output is then 0, as in
    the authors' code, and torch's warning about initialising empty weights is silenced."""
    hidden = channels // reduction
    with warnings.catch_warnings():
        if hidden == 0:
            warnings.filterwarnings('ignore', 'Initializing zero-element tensors')
        return nn.Sequential(nn.Linear(channels, hidden, bias=False), nn.ReLU(),
                             nn.Linear(hidden, channels, bias=False))


class GroupSE(nn.Module):
    """Squeeze-and-excitation without biases (the authors' ``SE``, ``SE_A``): ``C → C/r → C``.
    With ``C // r = 0`` the gate is the constant 0.5 (:func:`bias_free_mlp`)."""

    def __init__(self, channels: int, reduction: int = 4):
        super().__init__()
        self.fc = bias_free_mlp(channels, reduction)

    def forward(self, x: Tensor) -> Tensor:
        return x * self.fc(x.mean(dim=(2, 3))).sigmoid()[:, :, None, None]


class SEAvgMax(nn.Module):
    """``SE_A_M``: one bias-free MLP on the average- and the max-pooled vector, summed."""

    def __init__(self, channels: int, reduction: int = 4):
        super().__init__()
        self.fc = bias_free_mlp(channels, reduction)

    def forward(self, x: Tensor) -> Tensor:
        logits = self.fc(x.mean(dim=(2, 3))) + self.fc(x.amax(dim=(2, 3)))
        return x * logits.sigmoid()[:, :, None, None]


class GroupCBAM(nn.Module):
    """``CBAM`` as AutoLA's ``operations.py`` writes it: a channel gate (one MLP with biases on
    GAP and GMP, summed) then a spatial gate (7×7 conv without bias on ``[max, mean]``, BN with
    momentum 0.01 and default initialisation, no ReLU)."""

    def __init__(self, channels: int, reduction: int = 4):
        super().__init__()
        hidden = channels // reduction
        self.mlp = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(),
                                 nn.Linear(hidden, channels))
        self.spatial = nn.Sequential(nn.Conv2d(2, 1, 7, padding=3, bias=False),
                                     nn.BatchNorm2d(1, eps=1e-5, momentum=0.01))

    def forward(self, x: Tensor) -> Tensor:
        logits = self.mlp(x.mean(dim=(2, 3))) + self.mlp(x.amax(dim=(2, 3)))
        x = x * logits.sigmoid()[:, :, None, None]
        return x * self.spatial(channel_pool(x)).sigmoid()


#: The primitives, in the order of ``α``'s columns (the authors' ``PRIMITIVES``).
PRIMITIVES = ('none', 'skip_connect', 'sep_conv_3x3', 'dil_conv_3x3', 'sep_conv_3x3_spatial',
              'dil_conv_3x3_spatial', 'SE', 'SE_A_M', 'CBAM')

#: name → ``factory(channels, affine)``.
OPS: Dict[str, Callable[[int, bool], nn.Module]] = {
    'none': lambda c, affine: Zero(),
    'skip_connect': lambda c, affine: nn.Identity(),
    'sep_conv_3x3': SepConvGate,
    'dil_conv_3x3': DilConvGate,
    'sep_conv_3x3_spatial': SepConvSpatialGate,
    'dil_conv_3x3_spatial': DilConvSpatialGate,
    'SE': lambda c, affine: GroupSE(c, 4),
    'SE_A_M': lambda c, affine: SEAvgMax(c, 4),
    'CBAM': lambda c, affine: GroupCBAM(c, 4),
}


def build_primitive(name: str, channels: int, affine: bool = True) -> nn.Module:
    """Primitive ``name`` on ``channels`` channels (affine BNs in the evaluated block, not
    in the search).

    Raises:
        ValueError: an unknown name; the message lists the primitives.
    """
    if name not in OPS:
        raise ValueError(f'unknown AutoLA primitive {name!r}; allowed: {", ".join(PRIMITIVES)}')
    return OPS[name](channels, affine)
