"""Instance Enhancement Batch Normalisation (IEBN): a BN layer with a per-instance gate.

Paper: `Instance Enhancement Batch Normalization: an Adaptive Regulator of Batch Noise`, Liang,
Huang, Liang and Yang, AAAI 2020. Authors' code: gbup-group/IEBN @ ed6d5635,
``models/cifar/iebn_resnet.py`` (class ``_BatchAttNorm`` / ``BAN2d``; the public code is
CIFAR only).

``(B, C, H, W) → (B, C, H, W)``; IEBN **replaces** a BatchNorm2d, it is not a plug-in::

    x̂ = BN_noaffine(x)                          batch statistics in training, running ones in
                                                 eval; momentum 0.1, eps 1e-5, as BatchNorm2d
    a = σ(GAP(x) ⊙ w_r + b_r)                    (B, C): GAP of the BN's *input*, not of x̂
    y = x̂ ⊙ (γ ⊙ a) + β

Parameters: ``weight`` γ and ``bias`` β (BN's, shape ``(C,)``), ``ie_weight`` w_r and ``ie_bias``
b_r (``(C,)``): ``4C``, i.e. ``2C`` more than the BN it replaces. Initialisation γ = 1, β = 0,
w_r = 0, b_r = −1, so at init ``y = σ(−1)·x̂ ≈ 0.2689·x̂``.

Placement (``replace_norm``): the authors replace the stem BN and bn1–bn3 of every block but keep
the downsample shortcut's BN a plain BatchNorm2d; an mmsase backbone given
``attention=dict(type='IEBN')`` does the same (ResNet-50: 25,602,472 parameters, +45,440).
``norm_cfg=dict(type='IEBN')`` also works (mmcv's ``build_norm_layer`` names it ``bn1``, ``bn2``,
... through ``_abbr_ = 'bn'``), but an mmpretrain/mmdet ResNet then replaces the downsample BNs
too (+2C each: +7,680 for ResNet-50).

IEBN subclasses ``nn.BatchNorm2d`` so that everything that treats BN layers as such reaches it:
``norm_eval``, frozen stages, ``zero_init_residual`` (γ of bn3 set to 0, as intended), the
backbones' ``Constant`` BN init (``weight`` and ``bias`` only), mmengine's ``norm_decay_mult``
(then on all four parameters; the authors weight-decay all of them), and the loading of a plain
BN's state dict (same keys and shapes; ``ie_weight`` and ``ie_bias`` are then missing and keep
their init). ``_BatchNorm`` is also listed as a direct base: mmengine's initialisers match
``layer='_BatchNorm'`` against a class's name and its *direct* bases only, so a plain
``nn.BatchNorm2d`` subclass would escape mmpretrain's and mmdet's BN init.

The flip side: code that **replaces** every ``_BatchNorm`` by something built from its BN part
drops the gate without a word. ``nn.SyncBatchNorm.convert_sync_batchnorm`` and mmengine's
``convert_sync_batchnorm`` (the runner's ``sync_bn`` option) turn IEBN into a plain
SyncBatchNorm, and mmcv's ``fuse_conv_bn`` folds it into the preceding conv as if it were a BN:
use neither on a network with IEBN.

Differences from the code: γ, β, w_r, b_r are ``(1, C, 1, 1)`` there (γ and β are registered
over an ``affine=False`` ``_BatchNorm``) and w_r, b_r are named ``weight_readjust`` /
``bias_readjust``; to load the authors' state dicts, flatten those four and rename the two.
Their ResNet initialises only ``nn.BatchNorm2d`` instances, which ``BAN2d`` is not; here
:meth:`init_weights` resets only w_r and b_r, which no backbone init touches otherwise. The
gate is computed in float32 (float64 for float64 inputs); the output has the dtype of the BN
part, as a BatchNorm2d's under autocast.
"""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.registry import MODELS
from torch import Tensor
from torch.nn.modules.batchnorm import _BatchNorm

from ..utils import check_channels, compute_dtype
from .base import REPLACE_NORM, AttentionBlock


@MODELS.register_module()
class IEBN(nn.BatchNorm2d, _BatchNorm, AttentionBlock):
    """Instance-enhancement batch normalisation over ``C = num_features`` channels.

    Args:
        num_features: channels ``C`` (positional, as mmcv's ``build_norm_layer`` passes it).
        eps: BN's ``eps``.
        momentum: BN's ``momentum`` (``None``: cumulative average, as BatchNorm2d).
        in_channels: not accepted: it is how mmcv/mmdet build plug-ins placed after a conv,
            which IEBN cannot be; giving it raises a ``ValueError`` that says so.
    """

    _abbr_ = 'bn'
    position = REPLACE_NORM
    positions = (REPLACE_NORM, )

    def __init__(self, num_features: Optional[int] = None, eps: float = 1e-5,
                 momentum: Optional[float] = 0.1, *, in_channels: Optional[int] = None):
        if in_channels is not None:
            raise ValueError(
                f'IEBN replaces the BN layers of a residual block; it cannot be a plug-in '
                f"placed after a conv (mmdet's plugins=[dict(cfg=dict(type='IEBN'), "
                f"position='after_conv3')] builds it with in_channels={in_channels!r}). Use "
                f"norm_cfg=dict(type='IEBN'), or attention=dict(type='IEBN') in an mmsase "
                f'backbone, which replaces the stem BN and bn1-bn3 of every block')
        check_channels(num_features, 'IEBN num_features')
        super().__init__(num_features, eps=eps, momentum=momentum)
        self.ie_weight = nn.Parameter(torch.zeros(num_features))
        self.ie_bias = nn.Parameter(torch.full((num_features, ), -1.))

    def reset_parameters(self) -> None:
        super().reset_parameters()
        if hasattr(self, 'ie_weight'):  # BN's constructor calls this before they exist
            self.init_weights()

    def init_weights(self) -> None:
        nn.init.zeros_(self.ie_weight)
        nn.init.constant_(self.ie_bias, -1.)

    def forward(self, x: Tensor) -> Tensor:
        self._check_input_dim(x)
        # Running-statistics bookkeeping as nn.BatchNorm2d.forward, with the affine left out.
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:
                factor = 1.0 / float(self.num_batches_tracked)
        use_batch_stats = self.training or (self.running_mean is None
                                            and self.running_var is None)
        keep = not self.training or self.track_running_stats
        x_hat = F.batch_norm(x, self.running_mean if keep else None,
                             self.running_var if keep else None, None, None, use_batch_stats,
                             factor, self.eps)
        dtype = compute_dtype(x.dtype)
        gate = torch.sigmoid(x.mean((2, 3), dtype=dtype) * self.ie_weight.to(dtype)
                             + self.ie_bias.to(dtype))
        scale = (self.weight.to(dtype) * gate).to(x_hat.dtype)
        return x_hat * scale[..., None, None] + self.bias.to(x_hat.dtype)[:, None, None]
