"""HOGA, the high-order group attention that AutoLA searches, and its searched block.

Paper: `Auto Learning Attention`, Ma, Zhang, Xia and Tao, NeurIPS 2020; authors' code
https://github.com/btma48/AutoLA (commit 49c1e57f: ``attention_model_test.py``, the evaluated
``Attention``; ``attention_resnet.py``, the searched one).

On ``x (B, C, H, W)``, ``C`` divisible by 4, ``c = C/4``:

1. split ``x`` into the groups ``g1..g4`` of ``c`` channels;
2. node ``n_i = Σ_{j<i} op_{i,j}(n_j) + op_{i,0}(g_i)`` for i = 1..4 (ten edges,
   :mod:`.genotype`);
3. ``s = SE_c(g1 + g2 + g3 + g4)`` (bias-free SE on ``c`` channels);
4. ``y = SE_C(back([n1, n2, n3, n4, s]) + x)``, ``back`` = 1×1 conv ``5c → C``, BN, ReLU,
   1×1 conv ``C → C``, BN (the authors' ``channel_back``); ``+ x`` is HOGA's inner residual.

Placed after the last BN of a residual block, before the identity addition (the authors'
``CifarAttentionBasicBlock``: after ``bn2``). The SE reductions are the authors': ``r = 8`` and
``8`` in the evaluated block, ``4`` and ``16`` in the search's supernet
(:class:`~.supernet.AutoLASupernet`).
"""
from typing import Callable, Dict

import torch
import torch.nn as nn
from torch import Tensor

from ..algorithms.spaces import GenotypeLike
from ..utils import check_channels
from .genotype import AUTOLA_SPACE, NODES, edge_name
from .operations import GroupSE, build_primitive

__all__ = ['HOGADag', 'AutoLA']


class HOGADag(nn.Module):
    """HOGA's fixed structure around its ten edges (split, nodes, group SE, channel back,
    inner residual, output SE); subclasses give the edges. Like SASE's blocks it is a plain
    module, which the backbones place after the last BN.

    Args:
        in_channels: ``C``, divisible by 4.
        build_edges: ``C/4`` → {edge name (:data:`~.genotype.EDGES`): its module on ``C/4``
            channels}; called once the channels are checked.
        group_reduction: the reduction of the SE on the summed groups.
        out_reduction: the reduction of the output SE.
    """

    _abbr_ = 'autola'

    def __init__(self, in_channels: int, build_edges: Callable[[int], Dict[str, nn.Module]],
                 group_reduction: int, out_reduction: int):
        super().__init__()
        check_channels(in_channels, 'in_channels')
        if in_channels % NODES:
            raise ValueError(f'{type(self).__name__}: in_channels={in_channels} must be '
                             f'divisible by {NODES} (HOGA splits the channels into {NODES} '
                             'groups)')
        check_channels(group_reduction, 'group_reduction')
        check_channels(out_reduction, 'out_reduction')
        self.in_channels = in_channels
        self.group_channels = group = in_channels // NODES
        self.edges = nn.ModuleDict(build_edges(group))
        self.group_se = GroupSE(group, group_reduction)
        self.channel_back = nn.Sequential(
            nn.Conv2d(group * (NODES + 1), in_channels, 1, bias=False),
            nn.BatchNorm2d(in_channels), nn.ReLU(),
            nn.Conv2d(in_channels, in_channels, 1, bias=False),
            nn.BatchNorm2d(in_channels))
        self.out_se = GroupSE(in_channels, out_reduction)

    def dag(self, x: Tensor, edge: Callable[[str, Tensor], Tensor]) -> Tensor:
        """The block's output, ``edge(name, input)`` computing each edge."""
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f'{type(self).__name__}(in_channels={self.in_channels}) expects '
                             f'(B, {self.in_channels}, H, W), got {tuple(x.shape)}')
        groups = x.split(self.group_channels, dim=1)
        nodes = []
        for node in range(1, NODES + 1):
            inputs = [groups[node - 1]] + nodes
            nodes.append(sum(edge(edge_name(node, source), inputs[source])
                             for source in range(node)))
        summed = self.group_se(sum(groups))
        return self.out_se(self.channel_back(torch.cat(nodes + [summed], dim=1)) + x)


class AutoLA(HOGADag):
    """The HOGA block of a genotype, as AutoLA evaluates it (``Attention`` of the authors'
    ``attention_model_test.py``): each edge its primitive with affine BNs.

    Args:
        in_channels: ``C``, divisible by 4.
        genotype: edge → primitive, a genotype JSON file, or ``None`` for the authors'
            searched genotype (:data:`~.genotype.AUTHORS_GENOTYPE`).
        group_reduction: SE reduction on the summed groups (authors: 8).
        out_reduction: reduction of the output SE (authors: 8).

    Shape: ``(B, C, H, W) → (B, C, H, W)``.
    """

    def __init__(self, in_channels: int, genotype: GenotypeLike = None,
                 group_reduction: int = 8, out_reduction: int = 8):
        genotype = AUTOLA_SPACE.load(genotype)
        super().__init__(in_channels, lambda group: {
            edge: build_primitive(op, group, affine=True) for edge, op in genotype.items()},
            group_reduction, out_reduction)
        self.genotype = genotype

    def forward(self, x: Tensor) -> Tensor:
        return self.dag(x, lambda name, v: self.edges[name](v))

    def extra_repr(self) -> str:
        return f'in_channels={self.in_channels}, genotype={self.genotype}'
