"""SEM: the Switchable Excitation Module, one block that decides per input how much of three
excitation operators (SE's FC, ECA's 1-D conv, IEBN's instance enhancement) to use.

Paper: `Switchable Self-attention Module` (the repository's title: "SEM: Switchable Excitation
Module for Self-attention Mechanism"), Zhong, Wen, Qin, 2022 - https://arxiv.org/abs/2209.05680

Authors' code (BASELINES_CODE.md §10): Qrange-group/SEM @db5e194d ``models/sem.py``, where the
module is written into the CIFAR ``Bottleneck``; their ``BasicBlock`` has no SEM.
``(B, C, H, W) → (B, C, H, W)``::

    z  = GAP(x) ∈ (B, C)
    w  = σ(Linear_{C→3}(z)) ∈ (B, 3)                         the decision (w0, w1, w2)
    FC  = Linear_{h→C}(δ(Linear_{C→h}(z)))                    SE's excitation, biased
    ECA = Conv1d_k(z viewed as (B, 1, C)), padding k // 2     ECA's, no bias
    IE  = z ⊙ w_ie + b_ie                                     IEBN's, per channel
    y  = x ⊙ σ(w0·FC) ⊙ σ(w1·ECA) ⊙ σ(w2·IE)

Each decision weight scales its operator's logit before the sigmoid; the three maps multiply.
``h = round(C / 16)`` (the authors' ``round(planes / 4)`` with ``C = 4·planes``; at least 1).
``k`` is ECA's formula without its clamp to 3 (:func:`~.eca.eca_kernel_size` with
``min_size=1``): 3, 5, 5 for C = 64, 128, 256. Parameters for ``16 | C``::

    C²/8 + C/16 + 6C + 3 + k        (C = 64: 906, 128: 2,832, 256: 9,752)

so a CIFAR ResNet-164 gains 242,820 (1,704,154 → 1,946,974 on CIFAR-10).

Initialisation, as the authors': PyTorch's defaults for the three Linear layers and the Conv1d
(their network's init loop touches only Conv2d and BN), ``w_ie = 0`` and ``b_ie = −1``, so at
initialisation the IE logit is ``−w2`` for every channel and the block scales its input by
about ``0.5 · 0.5 · σ(−0.5) ≈ 0.1``. :meth:`SEM.init_weights` re-applies all of it after a
backbone's generic init.

Seeing the decision: ``w`` passes through the sub-module ``decision`` (an ``nn.Identity``), so a
forward hook on ``<block>.decision`` (``backbone.layer1.0.sem.decision``) receives ``w`` of shape
``(B, 3)``, columns (FC, ECA, IE); :class:`mmsase.engine.hooks.SEMDecisionHook` averages it
over a data set and draws it.

Placement: after the last BN of a residual block, before the identity addition. The authors
put it in bottlenecks only (CIFAR ResNet-164, ``CifarResNet(block='bottleneck')``), whose
shortcuts project (conv + BN) where the shape changes, so every channel of the identity path
is at full scale; in a basic block (``CifarResNet``
ResNet-20 of mmsase's demo) it goes after the second BN, which is mmsase's choice, not theirs
(with option-A shortcuts such a network starts learning late, see
``configs/demo/cifar_resnet20_sem_digits.py``).

Differences from the code: the IE parameters are ``(C,)`` ``ie_weight`` / ``ie_bias`` here,
``(1, C, 1, 1)`` ``w1`` / ``b1`` there; the other names are theirs (``switch_fc``, ``fc1``,
``fc2``, ``conv``), so their state dicts load after flattening and renaming those two.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.registry import MODELS
from torch import Tensor

from ..utils import check_channels
from .base import AFTER_LAST_NORM, AttentionBlock
from .eca import eca_kernel_size

#: The excitation operators, in the order of the decision vector's columns.
SEM_OPERATORS = ('FC', 'ECA', 'IE')


@MODELS.register_module()
class SEM(AttentionBlock):
    """``y = x ⊙ σ(w0·FC(z)) ⊙ σ(w1·ECA(z)) ⊙ σ(w2·IE(z))``, ``z = GAP(x)``,
    ``w = σ(Linear(z))``: ``(B, C, H, W) → (B, C, H, W)``.

    Args:
        in_channels: channels ``C``.
        reduction: the FC operator's hidden width is ``max(1, round(C / reduction))``.
        gamma, beta: ``γ`` and ``b`` of ECA's kernel formula (no clamp to 3).

    ``C²/8 + C/16 + 6C + 3 + k`` parameters for ``reduction = 16`` and ``16 | C``. The
    decision ``w`` ``(B, 3)`` is the output of the sub-module ``decision``.
    """

    _abbr_ = 'sem'
    position = AFTER_LAST_NORM

    def __init__(self, in_channels: int, reduction: int = 16, gamma: float = 2,
                 beta: float = 1):
        super().__init__()
        self.in_channels = check_channels(in_channels, 'in_channels')
        self.reduction = check_channels(reduction, 'reduction')
        hidden = max(1, round(in_channels / reduction))
        self.switch_fc = nn.Linear(in_channels, len(SEM_OPERATORS))
        self.decision = nn.Identity()
        self.fc1 = nn.Linear(in_channels, hidden)
        self.fc2 = nn.Linear(hidden, in_channels)
        self.kernel_size = eca_kernel_size(in_channels, gamma, beta, min_size=1)
        self.conv = nn.Conv1d(1, 1, self.kernel_size, padding=self.kernel_size // 2,
                              bias=False)
        self.ie_weight = nn.Parameter(torch.zeros(in_channels))
        self.ie_bias = nn.Parameter(torch.full((in_channels, ), -1.))

    def init_weights(self) -> None:
        for layer in (self.switch_fc, self.fc1, self.fc2, self.conv):
            layer.reset_parameters()
        nn.init.zeros_(self.ie_weight)
        nn.init.constant_(self.ie_bias, -1.)

    def forward(self, x: Tensor) -> Tensor:
        b, c = x.shape[:2]
        z = x.mean((2, 3))
        w = self.decision(torch.sigmoid(self.switch_fc(z)))
        fc = self.fc2(F.relu(self.fc1(z)))
        eca = self.conv(z.view(b, 1, c)).view(b, c)
        ie = z * self.ie_weight + self.ie_bias
        a = (torch.sigmoid(w[:, 0:1] * fc) * torch.sigmoid(w[:, 1:2] * eca)
             * torch.sigmoid(w[:, 2:3] * ie))
        return x * a.view(b, c, 1, 1)

    def extra_repr(self) -> str:
        return (f'in_channels={self.in_channels}, reduction={self.reduction}, '
                f'kernel_size={self.kernel_size}')
