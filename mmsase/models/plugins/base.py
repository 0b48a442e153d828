"""What every attention block declares: where it goes in a residual network.

A block says where it belongs, so that a config names only the block
(``attention=dict(type='mmsase.GCT')``) and the backbone puts it where its authors put it:

==================  =========================================================================
``position``        where inside a residual block
==================  =========================================================================
``after_last_norm`` on the residual branch after its last BN, before the identity addition
                    (SE, CBAM, ECA, SRM, GSoP, MCA, EANorm, SGE, SASE; mmdet's
                    ``position='after_conv3'``); built on the block's output channels
``before_conv``     on the input of every convolution: the stem conv, each conv of the block
                    and the downsample conv (GCT); built on each conv's input channels
``replace_norm``    in place of the BN layers: the stem BN and every BN of the block's main
                    branch, not the shortcut's (IEBN); built on each BN's channels
==================  =========================================================================

``blocks`` says which residual blocks of a stage carry it: ``'all'``, or ``'last'`` (GSoP-Net1
puts GSoP in the last block of each stage only).

Blocks that are not :class:`AttentionBlock` subclasses (any mmcv plug-in taking
``in_channels``) go ``after_last_norm`` in every block.

**Stateful blocks** (:func:`is_stateful`) carry a state from one call to the next, as DIA's
LSTM cell carries ``(h, c)`` from block to block of a stage. They define ``reset_state()``,
which starts a new sequence; the backbones call it on every stateful module they hold at the
start of each forward
(:meth:`~mmsase.models.backbones.shared_attention.SharesAttention.reset_attention_state`), so
that the state never crosses from one batch to the next.
"""
from typing import Tuple

import torch.nn as nn
from torch import Tensor

AFTER_LAST_NORM = 'after_last_norm'
BEFORE_CONV = 'before_conv'
REPLACE_NORM = 'replace_norm'
POSITIONS = (AFTER_LAST_NORM, BEFORE_CONV, REPLACE_NORM)

ALL_BLOCKS = 'all'
LAST_BLOCK = 'last'
BLOCK_CHOICES = (ALL_BLOCKS, LAST_BLOCK)


def is_stateful(module) -> bool:
    """Whether ``module`` (a module or a module class) carries a state between calls: its
    class defines ``reset_state()``. Looked up on the class, which is cheap and never finds a
    sub-module or parameter of that name."""
    cls = module if isinstance(module, type) else type(module)
    return callable(getattr(cls, 'reset_state', None))


class AttentionBlock(nn.Module):
    """Base class of mmsase's attention blocks.

    Class attributes:
        position: where the block goes by default (one of :data:`POSITIONS`).
        positions: every position the block may be asked for (``attention=dict(...,
            position=...)`` in a backbone); asking for another is an error naming the block.
        blocks: ``'all'`` or ``'last'`` (which residual blocks of a stage carry it).
        _abbr_: the sub-module name the block gets in a residual block (mmcv's plug-in
            convention), which keeps checkpoints interchangeable between backbones.
    """

    position: str = AFTER_LAST_NORM
    positions: Tuple[str, ...] = (AFTER_LAST_NORM, )
    blocks: str = ALL_BLOCKS

    def init_weights(self) -> None:
        """Re-apply the authors' initialisation.

        Backbones initialise every conv and BN their own way (mmpretrain: Kaiming, BN weight
        1); they call this on every block they placed afterwards, so a block whose authors
        initialise differently (CBAM's spatial BN weight 0, ...) overrides it here. The
        default keeps what the block's constructor set.
        """

    def check_input(self, x: Tensor) -> None:
        """Raise a ``ValueError`` naming the shape unless ``x`` is ``(B, in_channels, H, W)``."""
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f'{type(self).__name__}(in_channels={self.in_channels}) expects '
                             f'(B, {self.in_channels}, H, W), got {tuple(x.shape)}')
