"""The SASE supernet (spec §4): every edge a softmax-weighted mixture of its set's 7 ops.

One :class:`~mmsase.models.algorithms.architecture_params.ArchitectureParams` of
:data:`~mmsase.models.sase.genotype.SASE_SPACE` (the 6×7 logits ``α``) is shared by every
:class:`SASESupernet` block of a network, held unregistered once bound (see
:mod:`mmsase.models.algorithms.architecture_params`).

Module names mirror the fixed block: ``edges.<edge>.ops.<op>`` here is ``edges.<edge>`` in
:class:`~mmsase.models.sase.block.SASE`; :meth:`SASESupernet.export_fixed_block` copies them.
"""
from typing import Optional, Tuple, Union

import torch.nn as nn
from torch import Tensor

from ..algorithms.architecture_params import (ArchitectureParams, SearchableBlock,
                                              bind_architecture)
from ..search_space import EDGE_OP_SET, EDGES, MIXTURES, FeatureStats, op_set, weighted_sum
from ..utils import check_channels
from .block import SASE, SASEDag
from .genotype import SASE_SPACE, GenotypeLike, load_genotype

__all__ = ['MixedOp', 'ArchitectureParams', 'SASESupernet', 'bind_architecture']


class MixedOp(nn.Module):
    """All operations of one set; ``forward(x, weights) = Σ_o weights_o · o(x)``.

    Args:
        op_set_name: a set name (``'channel_squeeze'``, …) or an edge name (``'cs'``, …).
        channels: the block's channels.
        fused: default for :meth:`forward`'s ``fused``.

    Two paths compute the same sum. The reference applies every op to the raw input. The fused
    path (default) runs the set's entry in :data:`~mmsase.models.search_space.MIXTURES`: the
    squeeze sets hand all ops one :class:`FeatureStats` (mean, max, variance, skewness and L4
    computed once per edge — or once per block for ``cs`` and ``ss1``, which the block gives
    one shared ``FeatureStats``); the excitation sets batch their convolution stacks and apply
    one sigmoid to all their logits. In the block, the statistics come from C++ sweeps over
    ``x`` — three per block, shared by the 21 squeeze ops of ``cs``, ``ss1`` and ``ss2`` (see
    :meth:`SASESupernet.forward`).
    """

    def __init__(self, op_set_name: str, channels: int, fused: bool = True):
        super().__init__()
        ops = op_set(op_set_name)
        self.op_set = EDGE_OP_SET.get(op_set_name, op_set_name)
        self.ops = nn.ModuleDict({name: cls(channels) for name, cls in ops.items()})
        self.fused = fused

    def forward(self,
                x: Union[Tensor, FeatureStats],
                weights: Tensor,
                fused: Optional[bool] = None) -> Tensor:
        if weights.shape != (len(self.ops), ):
            raise ValueError(f'MixedOp({self.op_set!r}) expects {len(self.ops)} weights, got '
                             f'shape {tuple(weights.shape)}')
        fused = self.fused if fused is None else fused
        ops = list(self.ops.values())
        if fused and self.op_set in MIXTURES:
            return MIXTURES[self.op_set](ops, x, weights)
        if isinstance(x, FeatureStats):
            raise ValueError('the reference path takes a tensor, not FeatureStats')
        return weighted_sum([op(x) for op in ops], weights)

    def prepare(self, stats: FeatureStats) -> None:
        """Let every op request the extra sums it will need from ``stats`` (squeeze sets)."""
        for op in self.ops.values():
            if hasattr(op, 'prepare'):
                op.prepare(stats)

    def extra_repr(self) -> str:
        return f'op_set={self.op_set!r}'


class SASESupernet(SearchableBlock, SASEDag):
    """The SASE block with a mixed operation on every edge (the search's supernet).

    Args:
        in_channels: channels of the input.
        arch: the shared :class:`ArchitectureParams` to bind (unregistered); ``None`` makes
            the block own a registered one until :meth:`bind` is called.
        fused: share work between the ops of an edge and between the edges ``cs``/``ss1``
            (:meth:`SASEDag.dag` with ``fast=True``); ``False`` runs the literal reference.
    """

    _abbr_ = 'sase_supernet'
    search_space = SASE_SPACE
    one_sweep_stats = True  # its squeeze edges need every moment of both axes

    def __init__(self,
                 in_channels: int,
                 arch: Optional[ArchitectureParams] = None,
                 fused: bool = True):
        check_channels(in_channels, 'in_channels')
        super().__init__(in_channels, {edge: MixedOp(EDGE_OP_SET[edge], in_channels, fused)
                                       for edge in EDGES})
        self.fused = fused
        self.init_architecture(arch)

    def forward(self, x: Tensor, fused: Optional[bool] = None) -> Tensor:
        """``x (B, C, H, W)`` → the block's output. With ``fused`` (default) the squeeze edges
        read ``x`` through one-sweep :class:`FeatureStats` (CPU float32/float64): sweep 1 —
        all moments and maxima of ``x`` along both axes; sweep 2 — the weighted sums both
        ``std_l2`` ops of ``cs`` and ``ss1`` need; sweep 3 — the moments of ``x ⊙ m2`` with
        the sums of ``ss2``'s ``std_l2`` (``x ⊙ m2`` is never formed). Elsewhere, or with
        ``MMSASE_NO_FUSED=1``, the lazy torch path computes the same values."""
        fused = self.fused if fused is None else fused
        return self.dag(x, self._mixed_edges(fused), fused)

    def attention_maps(self, x: Tensor, fused: Optional[bool] = None) -> Tuple[Tensor, Tensor]:
        """``(m1 (B, C, 1, 1), ms (B, 1, H, W))``: the block's output is ``x ⊙ (m1 + ms) / 2``
        (what a probe of the attention reads, e.g. the planted benchmarks)."""
        fused = self.fused if fused is None else fused
        return self.dag_maps(x, self._mixed_edges(fused), fused)

    def _mixed_edges(self, fused: bool):
        probs = self.arch.probabilities()
        rows = {edge: probs[i] for i, edge in enumerate(EDGES)}
        return lambda name, v: self.edges[name](v, rows[name], fused)

    def export_fixed_block(self, genotype: GenotypeLike = None) -> SASE:
        """A fixed :class:`SASE` block for ``genotype`` (default: :meth:`derive`) whose
        weights are copies of the chosen ops' and of ``fuse``; same device, dtype and mode."""
        genotype = self.derive() if genotype is None else load_genotype(genotype)
        block = SASE(self.in_channels, genotype)
        ref = self.fuse.conv.weight
        block.to(device=ref.device, dtype=ref.dtype)
        for edge in EDGES:
            block.edges[edge].load_state_dict(self.edges[edge].ops[genotype[edge]].state_dict())
        block.fuse.load_state_dict(self.fuse.state_dict())
        return block.train(self.training)

    def extra_repr(self) -> str:
        return f'in_channels={self.in_channels}, bound={self.is_bound}'
