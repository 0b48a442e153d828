"""The SASE search space (spec §2): four operation sets of seven operations each.

=====================  ======================================================================
set                    operations (in order)
=====================  ======================================================================
channel_squeeze        gap, gsop, std_l2, l4, gap_gmp, gap_std, gap_skew   (B,C,H,W)→(B,C,1,1)
channel_excitation     fc, conv1d_3, conv1d_5, conv1d_7, conv1d_3x2, conv1d_3x3, affine
                                                                           (B,C,1,1)→(B,C,1,1)
spatial_squeeze        gap, gsop, std_l2, l4, gap_gmp, gap_std, gap_skew   (B,C,H,W)→(B,1,H,W)
spatial_excitation     conv_3, conv_5, conv_7, conv_3x3x2, sep_3, sep_5, affine
                                                                           (B,1,H,W)→(B,1,H,W)
=====================  ======================================================================

The six edges of the SASE DAG (spec §1) and the set each searches over are :data:`EDGES` and
:data:`EDGE_OP_SET`. Every op's constructor takes the block's ``channels`` only; build one with
:func:`build_op`. To extend a set, add a class to its dict — the order of a dict is the order
of the architecture logits, so append rather than insert if old searches must stay readable
(:class:`~mmsase.models.sase.ArchitectureParams` holds one 6×K tensor, so all four sets must
keep the same size K).

Each set is one module (:mod:`.channel_squeeze`, :mod:`.channel_excitation`,
:mod:`.spatial_squeeze`, :mod:`.spatial_excitation`); what the sets share is one module per
concept: :mod:`.statistics` (the lazily computed moments every squeeze op reads, the ``eps``
constants) and :mod:`.moment_functions` (its moments with hand-written gradients),
:mod:`.pooling`, :mod:`.fusion` (the 5-parameter 2→1 fusion), :mod:`.squeeze` and
:mod:`.excitation` (the op bases and the ops both squeeze sets share), and :mod:`.mixture` (the
supernet's ``Σ_o w_o · o(x)``, on the C++ kernels of :mod:`.power_sums`,
:mod:`.moment_mixture` and :mod:`.conv_stacks`).
"""
from typing import Dict, Tuple, Type

import torch.nn as nn

from ..utils import check_channels
from .channel_excitation import CHANNEL_EXCITATION_OPS
from .channel_squeeze import CHANNEL_SQUEEZE_OPS
from .mixture import excitation_mixture, squeeze_mixture, weighted_sum
from .spatial_excitation import SPATIAL_EXCITATION_OPS
from .spatial_squeeze import SPATIAL_SQUEEZE_OPS
from .statistics import FeatureStats, as_stats


class UnknownNameError(KeyError, ValueError):
    """An unknown edge, set or operation name. Both a ``KeyError`` (a failed look-up) and a
    ``ValueError`` (a bad argument), with its message printed unquoted."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ''


#: set name → {op name → op class}.
OP_SETS: Dict[str, Dict[str, Type[nn.Module]]] = {
    'channel_squeeze': CHANNEL_SQUEEZE_OPS,
    'channel_excitation': CHANNEL_EXCITATION_OPS,
    'spatial_squeeze': SPATIAL_SQUEEZE_OPS,
    'spatial_excitation': SPATIAL_EXCITATION_OPS,
}

#: The DAG's edges, in the order of the rows of the architecture logits.
EDGES: Tuple[str, ...] = ('cs', 'ce1', 'ce2', 'ss1', 'ss2', 'se')

#: edge → the name of the set it searches over.
EDGE_OP_SET: Dict[str, str] = {
    'cs': 'channel_squeeze',
    'ce1': 'channel_excitation',
    'ce2': 'channel_excitation',
    'ss1': 'spatial_squeeze',
    'ss2': 'spatial_squeeze',
    'se': 'spatial_excitation',
}

#: set name → ``mixture(ops, x, weights) = Σ_o weights_o · o(x)`` computed with work shared
#: between the ops (the supernet's fused path). A set without an entry is summed op by op.
MIXTURES = {
    'channel_squeeze': squeeze_mixture,
    'spatial_squeeze': squeeze_mixture,
    'channel_excitation': excitation_mixture,
    'spatial_excitation': excitation_mixture,
}


def op_set(edge_or_set: str) -> Dict[str, Type[nn.Module]]:
    """The ``{name: class}`` dict of a set, given the set's name or an edge's name."""
    set_name = EDGE_OP_SET.get(edge_or_set, edge_or_set)
    if set_name not in OP_SETS:
        raise UnknownNameError(f'unknown edge or operation set {edge_or_set!r}; edges: '
                       f'{", ".join(EDGES)}; sets: {", ".join(OP_SETS)}')
    return OP_SETS[set_name]


def build_op(edge_or_set: str, name: str, channels: int) -> nn.Module:
    """Build operation ``name`` of the set searched by ``edge_or_set`` for ``channels``.

    Raises:
        UnknownNameError: (a ``KeyError`` and a ``ValueError``) unknown edge/set or op; the
            message lists the allowed ones.
        ValueError: ``channels`` is not a positive int.
    """
    ops = op_set(edge_or_set)
    if name not in ops:
        raise UnknownNameError(f'unknown operation {name!r} for {edge_or_set!r}; allowed: '
                       f'{", ".join(ops)}')
    return ops[name](check_channels(channels))


__all__ = [
    'OP_SETS', 'EDGES', 'EDGE_OP_SET', 'MIXTURES', 'CHANNEL_SQUEEZE_OPS',
    'CHANNEL_EXCITATION_OPS', 'SPATIAL_SQUEEZE_OPS', 'SPATIAL_EXCITATION_OPS', 'FeatureStats',
    'UnknownNameError', 'as_stats', 'build_op', 'op_set', 'check_channels', 'weighted_sum'
]
