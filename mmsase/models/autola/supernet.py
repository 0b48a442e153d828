"""AutoLA's supernet: HOGA with every edge a softmax-weighted mixture of the nine primitives.

As the authors' search model (btma48/AutoLA ``attention_resnet.py``, ``Attention`` with
``MixedOp``): the primitives' BNs are not affine, the SE on the summed groups has reduction 4
and the output SE 16, and one ``α`` (10 × 9, ``N(0, 1e-3²)``) is shared by every block of the
network — an :class:`~mmsase.models.algorithms.architecture_params.ArchitectureParams` of
:data:`~.genotype.AUTOLA_SPACE`, bound to each block as SASE's supernet binds its own. The
search (``mmsase.SASESearch``, alias ``mmsase.DARTSSearch``) finds the blocks by their space.
"""
from typing import Optional

import torch.nn as nn
from torch import Tensor

from ..algorithms.architecture_params import ArchitectureParams, SearchableBlock
from ..search_space.mixture import weighted_sum
from .block import HOGADag
from .genotype import AUTOLA_SPACE, EDGES
from .operations import PRIMITIVES, build_primitive

__all__ = ['MixedPrimitive', 'AutoLASupernet']


class MixedPrimitive(nn.Module):
    """All nine primitives on one edge: ``forward(x, weights) = Σ_o weights_o · o(x)``
    (the authors' ``MixedOp``; BNs not affine)."""

    def __init__(self, channels: int):
        super().__init__()
        self.ops = nn.ModuleDict({name: build_primitive(name, channels, affine=False)
                                  for name in PRIMITIVES})

    def forward(self, x: Tensor, weights: Tensor) -> Tensor:
        if weights.shape != (len(self.ops), ):
            raise ValueError(f'MixedPrimitive expects {len(self.ops)} weights, got shape '
                             f'{tuple(weights.shape)}')
        return weighted_sum([op(x) for op in self.ops.values()], weights)


class AutoLASupernet(SearchableBlock, HOGADag):
    """HOGA with a :class:`MixedPrimitive` on each of its ten edges (the search's supernet).

    Args:
        in_channels: ``C``, divisible by 4.
        arch: the shared ``ArchitectureParams`` of :data:`~.genotype.AUTOLA_SPACE` to bind
            (unregistered); ``None`` makes the block own a registered one until
            :meth:`bind` is called.
        group_reduction: SE reduction on the summed groups (authors' search: 4).
        out_reduction: reduction of the output SE (authors' search: 16).

    Shape: ``(B, C, H, W) → (B, C, H, W)``. :meth:`derive` gives the genotype that
    ``mmsase.AutoLA`` builds (``none`` passed over).
    """

    _abbr_ = 'autola_supernet'
    search_space = AUTOLA_SPACE

    def __init__(self, in_channels: int, arch: Optional[ArchitectureParams] = None,
                 group_reduction: int = 4, out_reduction: int = 16):
        super().__init__(in_channels,
                         lambda group: {edge: MixedPrimitive(group) for edge in EDGES},
                         group_reduction, out_reduction)
        self.init_architecture(arch)

    def forward(self, x: Tensor) -> Tensor:
        weights = self.arch.probabilities()
        rows = dict(zip(EDGES, weights))
        return self.dag(x, lambda name, v: self.edges[name](v, rows[name]))

    def extra_repr(self) -> str:
        return f'in_channels={self.in_channels}, bound={self.is_bound}'
