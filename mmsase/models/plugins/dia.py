"""Dense-and-Implicit Attention (DIA): one LSTM cell shared by the residual blocks of a stage.

Paper: `DIANet: Dense-and-Implicit Attention Network`, Huang, Liang, Liang and Yang, AAAI 2020 -
https://arxiv.org/abs/1905.10671 (authors' repository gbup-group/DIANet). The module as EAN
(Efficient Attention Network, arXiv 2011.14058) shares it, BASELINES_CODE.md §11:
gbup-group/EAN-efficient-attention-network @ 850d4e0a
``train_imagenet/imagenet_network/forward_config_dia_fbresnet.py`` (classes ``small_cell``,
``LSTMCell``, ``Attention``; ``search_imagent/`` @ 6af46658 has the same file).

One cell per stage. Each residual block ``t`` of the stage that applies it (EAN: whose
connection-code bit is 1) feeds it the global average of its last BN's output and rescales
that output by the new hidden state, before the identity addition. ``(B, C, H, W) →
(B, C, H, W)``; per sample, with ``x_t`` the ``t``-th applying block's BN output::

    s_t = GAP(x_t) ∈ R^C
    z_t = MLP_ih(s_t) + MLP_hh(h_{t-1}) ∈ R^4C       MLP(v) = W2 δ(W1 v + b1) + b2,
                                                     C → ⌊C/r⌋ → 4C, r = reduction = 20
    (i, f, g, o) = the four C-wide chunks of z_t, in that order
    c_t = σ(f) ⊙ c_{t-1} + σ(i) ⊙ tanh(g)
    h_t = σ(o) ⊙ σ(c_t)                               σ, not the LSTM's tanh (the authors')
    y_t = x_t ⊙ h_t                                   broadcast over H and W

``h_0 = c_0 = 0`` (so the first step still adds ``MLP_hh(0) = W2 δ(b1) + b2``). A block that
does not apply the module leaves ``(h, c)`` as it is: the state goes from one applying block to
the next, skipping the others, as in the authors' ``Attention.forward``.

Parameters: both MLPs biased, ``2·(C·h + h + h·4C + 4C) = 10·C·h + 2h + 8C`` with
``h = ⌊C/r⌋``: 32,792 / 132,146 / 530,534 / 2,105,548 for 256 / 512 / 1024 / 2048 channels,
2,801,020 for ResNet-50's four stages. Initialisation: PyTorch's default for ``nn.Linear`` (the
authors' network initialises only its convolutions and BNs); :meth:`DIA.init_weights` re-applies
it.

**State.** The module keeps ``(h, c)`` (``DIA.state``, not in the state dict) between calls;
:meth:`DIA.reset_state` starts a new sequence (a stateful block,
:func:`~mmsase.models.plugins.base.is_stateful`). The backbones reset every stateful module at
the start of each forward, so the state runs through one stage of one batch. Used alone, call
``reset_state()`` before each new sequence; a call whose batch size differs from the state's is
an error. The state is not copied by ``copy.deepcopy`` or pickled.

Differences from the code: the code's ``LSTMCell`` takes ``nlayers`` and a dropout between
layers; its networks use one layer, where the dropout's output is never read, so neither is
here. The zero state is made on the input's device and dtype (the code calls ``.cuda()``).
``in_channels < reduction`` (no hidden unit) is a ``ValueError`` naming both; the code would
build empty layers. ``w_ih`` / ``w_hh`` are the code's ``lstm.w_ih.0.seq`` /
``lstm.w_hh.0.seq``.
"""
from typing import Optional, Tuple

import torch
import torch.nn as nn
from mmengine.registry import MODELS
from torch import Tensor

from ..utils import check_channels
from .base import AFTER_LAST_NORM, AttentionBlock


def gate_mlp(in_channels: int, hidden: int, out_channels: int) -> nn.Sequential:
    """The authors' ``small_cell``: Linear(C → h) - ReLU - Linear(h → 4C), both biased."""
    return nn.Sequential(nn.Linear(in_channels, hidden), nn.ReLU(inplace=True),
                         nn.Linear(hidden, out_channels))


@MODELS.register_module()
class DIA(AttentionBlock):
    """``y_t = x_t ⊙ h_t``, ``h_t`` from an LSTM cell over the GAPs of successive calls (see
    the module docstring): ``(B, C, H, W) → (B, C, H, W)``.

    Args:
        in_channels: channels ``C`` (the cell's input and hidden width), at least
            ``reduction``.
        reduction: ``r``: the gate MLPs are ``C → ⌊C/r⌋ → 4C`` (the authors: 20).
    """

    _abbr_ = 'dia'
    position = AFTER_LAST_NORM

    def __init__(self, in_channels: int, reduction: int = 20):
        super().__init__()
        self.in_channels = check_channels(in_channels, 'in_channels')
        self.reduction = check_channels(reduction, 'reduction')
        hidden = in_channels // reduction
        if hidden < 1:
            raise ValueError(f'DIA: in_channels={in_channels} // reduction={reduction} = 0 '
                             f'hidden units; the gate MLPs need in_channels >= reduction')
        self.hidden_channels = hidden
        self.w_ih = gate_mlp(in_channels, hidden, 4 * in_channels)
        self.w_hh = gate_mlp(in_channels, hidden, 4 * in_channels)
        self._state: Optional[Tuple[Tensor, Tensor]] = None

    def init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Linear):
                module.reset_parameters()

    @property
    def state(self) -> Optional[Tuple[Tensor, Tensor]]:
        """``(h, c)``, each ``(B, C)``, after the last call; ``None`` after a reset."""
        return self._state

    def reset_state(self) -> None:
        """Start a new sequence: the next call starts from ``h = c = 0``."""
        self._state = None

    def forward(self, x: Tensor) -> Tensor:
        self.check_input(x)
        s = x.mean((2, 3))
        if self._state is None:
            h = c = torch.zeros_like(s)
        else:
            h, c = self._state
            if h.shape[0] != s.shape[0]:
                raise ValueError(
                    f'DIA: the state holds a batch of {h.shape[0]}, the input {tuple(x.shape)} '
                    f'one of {s.shape[0]}; call reset_state() before a new sequence (the '
                    f'backbones do at each forward)')
        i, f, g, o = (self.w_ih(s) + self.w_hh(h)).chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.sigmoid(c)
        self._state = (h, c)
        return x * h[:, :, None, None]

    def __getstate__(self):
        # the state may be part of an autograd graph, which deepcopy and pickle refuse
        state = super().__getstate__()
        return {**state, '_state': None}

    def extra_repr(self) -> str:
        return f'in_channels={self.in_channels}, reduction={self.reduction}'
