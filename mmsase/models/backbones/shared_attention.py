"""EAN's shared attention: one module per stage, applied by the blocks a connection code selects.

EAN (Efficient Attention Network, AAAI; authors' code gbup-group/EAN-efficient-attention-network,
``forward_config_share_sge_fbresnet.py``) owns one attention module per stage and lets residual
block ``i`` of the stage apply it after its last BN, before the identity addition, when bit ``i``
of the stage's connection code is 1 (:mod:`mmsase.models.ean.code`: leftmost bit = first block).

Here the backbone owns the modules as ``shared_attention`` (an ``nn.ModuleList``, one entry per
stage: state-dict keys ``shared_attention.<stage>.<param>``), and every residual block holds an
unregistered reference to its stage's module and a plug flag
(:meth:`~mmsase.models.backbones.attention.PlacesAttention.share_attention`). A block applied by
several blocks in one pass accumulates, as any reused module, the sum of their gradients.

A backbone without sharing takes a code too: only the plugged blocks get their own module (the
``attention_blocks`` semantics), and :meth:`SharesAttention.set_connection_code` may later
unplug some of those blocks (never plug a block that has no module).

**Stateful modules** (DIA's LSTM cell, :func:`~mmsase.models.plugins.base.is_stateful`) carry
a state from one applying block to the next. The blocks apply their stage's module in order,
an unplugged block does not call it (so it leaves the state as it is), and the backbone resets
every stateful module before each forward (:meth:`SharesAttention.reset_attention_state`, a
forward pre-hook): the state runs through one stage of one batch, starting from zero.
"""
from typing import List, Optional, Sequence, Tuple

import torch.nn as nn

from mmsase.models.ean.code import ConnectionCode
from mmsase.models.plugins.base import AFTER_LAST_NORM, is_stateful
from .attention import AttentionPlacement, attention_plan


def connection_plan(placement: Optional[AttentionPlacement], stage_blocks: Sequence[int],
                    attention_stages=None, attention_blocks=None, shared: bool = False,
                    connection_code=None
                    ) -> Tuple[Tuple[Tuple[bool, ...], ...], Optional[ConnectionCode]]:
    """Which blocks get a module of their own (the plan of
    :func:`~mmsase.models.backbones.attention.attention_plan`; all False when shared) and the
    parsed connection code (``None`` when neither ``shared`` nor a code is given; all plugged
    for a shared network without a code)."""
    if not shared and connection_code is None:
        return attention_plan(placement, stage_blocks, attention_stages, attention_blocks), None
    what = 'attention_shared=True' if shared else 'connection_code'
    if placement is None:
        raise ValueError(f'{what} needs an attention block (attention=dict(type=...))')
    if placement.position != AFTER_LAST_NORM:
        raise ValueError(f'{what}: only blocks placed after the last norm of a residual block '
                         f'can be shared or selected by a connection code; '
                         f'{placement.label} is placed {placement.position!r}')
    if attention_blocks is not None:
        raise ValueError(f'{what}: the connection code selects the blocks; give '
                         f'connection_code, not attention_blocks={attention_blocks!r}')
    if attention_stages is not None:
        raise ValueError(f'{what}: the connection code selects the blocks; unplug a whole '
                         f'stage with zeros in the code, not attention_stages')
    code = ConnectionCode.all_plugged(stage_blocks) if connection_code is None \
        else ConnectionCode.parse(connection_code, stage_blocks)
    if shared:
        return tuple((False, ) * n for n in stage_blocks), code
    return attention_plan(placement, stage_blocks, None, code.stage_strings()), code


class SharesAttention:
    """Mixin of backbones with residual stages ``self.res_layers`` (names of sequences of
    :class:`~mmsase.models.backbones.attention.PlacesAttention` blocks) and their block counts
    ``self.stage_blocks`` (mmpretrain's ResNet attribute) that take EAN's connection codes.

    A backbone calls :meth:`share_stage_attention` for each stage while building it when
    sharing, and sets ``self._connection_code`` (``None``: no code) once built. Its attention
    placement is ``self.attention``. Every forward starts with
    :meth:`reset_attention_state` (a forward pre-hook installed here).
    """

    _connection_code: Optional[ConnectionCode] = None

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.register_forward_pre_hook(_reset_attention_state)

    def reset_attention_state(self) -> None:
        """Start a new sequence in every stateful attention module of the network (shared or
        a block's own: DIA's ``(h, c)`` back to zero). Runs before each forward; a no-op, and
        cheap, unless the network's attention block is stateful."""
        placement = getattr(self, 'attention', None)
        if placement is None or not is_stateful(placement.block):
            return
        for module in self.modules():
            if is_stateful(module):
                module.reset_state()

    def residual_blocks(self) -> List[List[nn.Module]]:
        """The residual blocks, one list per stage."""
        return [list(getattr(self, name)) for name in self.res_layers]

    @property
    def connection_code(self) -> Optional[ConnectionCode]:
        """The code in use (``None`` for a network built without sharing or a code)."""
        return self._connection_code

    def share_stage_attention(self, placement: AttentionPlacement, stage: int,
                              blocks: Sequence[nn.Module], bits: Sequence[int]) -> None:
        """Build stage ``stage``'s module on its blocks' output channels, append it to
        ``self.shared_attention`` and let ``blocks`` apply it where ``bits`` are 1."""
        if stage == 0:
            self.shared_attention = nn.ModuleList()
        channels = {block.out_channels for block in blocks}
        if len(channels) != 1:  # never for ResNets: a stage keeps its width
            raise ValueError(f'stage {stage + 1} has blocks of {sorted(channels)} output '
                             f'channels; one shared module needs one width')
        module = placement.build(channels.pop(), stage)
        self.shared_attention.append(module)
        for block, bit in zip(blocks, bits):
            block.share_attention(module, bool(bit))

    def set_connection_code(self, code) -> ConnectionCode:
        """Plug the blocks whose bit is 1 and unplug the others (any form of
        :meth:`ConnectionCode.parse`); returns the parsed code. A block without a module
        (a network built without sharing) cannot be plugged."""
        code = ConnectionCode.parse(code, self.stage_blocks)
        for stage, (bits, blocks) in enumerate(zip(code.bits, self.residual_blocks())):
            for i, (bit, block) in enumerate(zip(bits, blocks)):
                if getattr(block, 'attention_position', None) != AFTER_LAST_NORM:
                    if bit:
                        raise ValueError(
                            f'connection code {code.to_string("-")} plugs '
                            f'{self.res_layers[stage]}.{i}, which carries no attention '
                            f'block after its last norm (built without sharing, it has a '
                            f'module only where the construction code had a 1)')
                    continue
                block.attention_plugged = bool(bit)
        self._connection_code = code
        return code


def _reset_attention_state(backbone: SharesAttention, args) -> None:
    """Forward pre-hook of the backbones (a module-level function, so that a copied or pickled
    backbone keeps it)."""
    backbone.reset_attention_state()
