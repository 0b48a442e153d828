"""The SASE block: the DAG of spec §1, and the fixed (searched) block built from a genotype.

:class:`SASEDag` holds the forward pass once; :class:`SASE` fills its six edges with single
operations, :class:`~mmsase.models.sase.supernet.SASESupernet` with mixed operations.
Module names: ``edges.<edge>`` is the edge's operation and ``fuse`` the fixed 2→1 fusion, so
a fixed block's state is a subset of a supernet's (``edges.<edge>.ops.<op>`` there).
"""
from typing import Callable, Mapping, Optional, Union

import torch
import torch.nn as nn
from torch import Tensor

from ..search_space import EDGES, FeatureStats, build_op
from ..search_space.fusion import StatFusion2d
from ..utils import check_channels
from .fused import maybe_fused_forward
from .genotype import GenotypeLike, load_genotype

#: ``edge_fn(edge_name, input) -> output``: how a DAG applies one of its edges.
EdgeFn = Callable[[str, Union[Tensor, FeatureStats]], Tensor]


def apply_attention(x: Tensor, m1: Tensor, ms: Tensor, fast: bool = False) -> Tensor:
    """``y = x ⊙ (broadcast(m1) + broadcast(ms)) / 2`` (spec §1).

    ``x (B,C,H,W)``, ``m1 (B,C,1,1)``, ``ms (B,1,H,W)``. With ``fast`` the halving is applied
    to the small maps and, when autograd is off, the full-size product is formed in place, so
    only one full-size temporary is written.
    """
    if not fast:
        return x * (m1 + ms) / 2
    attention = m1 * 0.5 + ms * 0.5  # (B, C, H, W), the only full-size temporary
    if not torch.is_grad_enabled() and attention.dtype == torch.promote_types(
            attention.dtype, x.dtype):
        return attention.mul_(x)
    return attention * x


class SASEDag(nn.Module):
    """The SASE DAG (spec §1) over six edge modules.

    Args:
        in_channels: channels ``C`` of the input ``(B, C, H, W)``.
        edges: one module per edge name in :data:`~mmsase.models.search_space.EDGES`.

    ``fuse`` is the fixed ``h = δ(BN(Conv1x1_{2→1}([ss1(x), ss2(x')])))`` (conv with bias).
    """

    #: Whether the fast path's :class:`FeatureStats` take every moment in one sweep
    #: (``one_sweep=True``): worth it when the edges need most of them (the supernet).
    one_sweep_stats = False

    def __init__(self, in_channels: int, edges: Mapping[str, nn.Module]):
        super().__init__()
        self.in_channels = check_channels(in_channels, 'in_channels')
        self.edges = nn.ModuleDict({edge: edges[edge] for edge in EDGES})
        self.fuse = StatFusion2d()

    def check_input(self, x: Tensor) -> None:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f'{type(self).__name__}(in_channels={self.in_channels}) expects '
                             f'(B, {self.in_channels}, H, W), got {tuple(x.shape)}')

    def dag(self, x: Tensor, edge: EdgeFn, fast: bool = False) -> Tensor:
        """The forward pass of spec §1; ``edge(name, input)`` applies one edge.

        ``fast=False`` is the literal reference. ``fast=True`` computes the same function with
        fewer passes over the feature map: ``cs`` and ``ss1`` read ``x`` through one shared
        :class:`FeatureStats` (moments computed once), ``ss2`` reads
        ``FeatureStats(x, channel_scale=m2)`` (so ``x' = x ⊙ m2`` is only materialised by ops
        that need it), and the output product is fused (:func:`apply_attention`). With
        :attr:`one_sweep_stats` both compute all their moments in one sweep each.
        """
        m1, ms = self.dag_maps(x, edge, fast)
        return apply_attention(x, m1, ms, fast)

    def dag_maps(self, x: Tensor, edge: EdgeFn, fast: bool = False):
        """The channel map ``m1 (B, C, 1, 1)`` and the spatial map ``ms (B, 1, H, W)`` of
        :meth:`dag`, whose output is ``x ⊙ (m1 + ms) / 2``."""
        self.check_input(x)
        sweep = fast and self.one_sweep_stats
        source = FeatureStats(x, one_sweep=sweep) if fast else x
        if sweep:
            self.prepare_edges(source, ('cs', 'ss1'))
        z = edge('cs', source)
        m1 = edge('ce1', z)  # channel attention map
        m2 = edge('ce2', z)  # re-weights x for the spatial branch only
        reweighted = FeatureStats(x, channel_scale=m2, one_sweep=sweep,
                                  parent=source) if fast else x * m2
        if sweep:
            self.prepare_edges(reweighted, ('ss2', ))
        h = self.fuse(edge('ss1', source), edge('ss2', reweighted))
        ms = edge('se', h)  # spatial attention map
        return m1, ms

    def prepare_edges(self, stats: FeatureStats, edges) -> None:
        """Let the squeeze edges reading ``stats`` request their extra sums up front, so that
        the requests of several edges share one sweep over ``x`` (one-sweep statistics)."""
        for name in edges:
            prepare = getattr(self.edges[name], 'prepare', None)
            if prepare is not None:
                prepare(stats)

    def extra_repr(self) -> str:
        return f'in_channels={self.in_channels}'


class SASE(SASEDag):
    """The fixed SASE attention block: one operation per edge, ``(B,C,H,W) → (B,C,H,W)``.

    Args:
        in_channels: channels of the input.
        genotype: ``None`` (the paper's searched genotype), a ``{edge: op}`` mapping, or the
            path of a JSON genotype file (see :mod:`~mmsase.models.sase.genotype`).
        fast: run the optimised forward (:meth:`SASEDag.dag` with ``fast=True``) — the
            reference maths rearranged, equal up to rounding in value and gradient, in training
            and in inference; ``False`` runs the literal reference. For the paper genotype in
            CPU float32 inference the fast path runs the fused C++ kernels of
            :mod:`~mmsase.models.sase.fused` (three passes over ``x``) when they apply
            (:func:`~mmsase.models.sase.fused.can_fuse`; ``MMSASE_NO_FUSED=1`` disables them).

    Placement (spec §1, **Decision**): after the last BN of a residual block, before the
    identity addition (mmdet ``position='after_conv3'``).
    """

    _abbr_ = 'sase'  # mmcv's build_plugin_layer names the submodule after it

    def __init__(self, in_channels: int, genotype: GenotypeLike = None, fast: bool = True):
        check_channels(in_channels, 'in_channels')
        genotype = load_genotype(genotype)
        super().__init__(
            in_channels, {edge: build_op(edge, genotype[edge], in_channels)
                          for edge in EDGES})
        self.genotype = genotype
        self.fast = fast

    def forward(self, x: Tensor, fast: Optional[bool] = None) -> Tensor:
        """``x (B, C, H, W)`` → ``x ⊙ A``; ``fast`` overrides the block's choice of path."""
        fast = self.fast if fast is None else fast
        if fast:
            y = maybe_fused_forward(self, x)
            if y is not None:
                return y
        return self.dag(x, lambda name, v: self.edges[name](v), fast)

    def extra_repr(self) -> str:
        ops = ', '.join(f'{e}={op}' for e, op in self.genotype.items())
        return f'in_channels={self.in_channels}, genotype=({ops})'
