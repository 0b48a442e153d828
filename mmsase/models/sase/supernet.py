"""The SASE supernet (spec §4): every edge a softmax-weighted mixture of its set's 7 ops.

One :class:`ArchitectureParams` (the 6×7 logits ``α``) is shared by every
:class:`SASESupernet` block of a network. Blocks hold it *unregistered* once bound
(:meth:`SASESupernet.bind` / :func:`bind_architecture`), so ``network.parameters()`` yields the
weights ``w`` only and ``α`` lives in exactly one place — the module that owns it (typically the
search algorithm), which also saves it and moves it between devices. A block never bound owns
a registered ``ArchitectureParams`` of its own, so it also works standalone.

Module names mirror the fixed block: ``edges.<edge>.ops.<op>`` here is ``edges.<edge>`` in
:class:`~mmsase.models.sase.block.SASE`; :meth:`SASESupernet.export_fixed_block` copies them.
"""
from contextlib import contextmanager
from typing import Callable, Dict, Iterator, Optional, Tuple, Union

import torch
import torch.nn as nn
from torch import Tensor

from ..search_space import EDGE_OP_SET, EDGES, MIXTURES, FeatureStats, op_set, weighted_sum
from ..utils import check_channels
from .block import SASE, SASEDag
from .genotype import GenotypeLike, load_genotype


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


#: how the logits become operation weights: softmax per edge (DARTS) or an independent
#: sigmoid per operation (FairDARTS).
WEIGHTINGS = ('softmax', 'sigmoid')


class ArchitectureParams(nn.Module):
    """The architecture logits ``α`` of the SASE DAG: one row of 7 per edge (spec §4).

    Args:
        init_std: ``α ~ N(0, init_std²)``; the spec's 1e-3.
        weighting: ``'softmax'`` (DARTS, the spec) or ``'sigmoid'`` (FairDARTS).

    Row ``i`` belongs to ``EDGES[i]`` and column ``j`` to the ``j``-th op of that edge's set.
    """

    def __init__(self, init_std: float = 1e-3, weighting: str = 'softmax'):
        super().__init__()
        if weighting not in WEIGHTINGS:
            raise ValueError(f'unknown weighting {weighting!r}; allowed: {WEIGHTINGS}')
        self.weighting = weighting
        self.op_names = {edge: tuple(op_set(edge)) for edge in EDGES}
        widths = {len(names) for names in self.op_names.values()}
        if len(widths) != 1:
            raise ValueError(f'all operation sets must have the same size, got {widths}')
        self.alpha = nn.Parameter(torch.empty(len(EDGES), widths.pop()))
        nn.init.normal_(self.alpha, 0.0, init_std)
        self._transform: Optional[Callable[[Tensor], Tensor]] = None

    def probabilities(self) -> Tensor:
        """The operation weights per edge, shape ``(6, 7)``: ``softmax(α)`` (or ``σ(α)``),
        as changed by an active :meth:`transformed`."""
        weights = self.alpha.sigmoid() if self.weighting == 'sigmoid' else \
            self.alpha.softmax(dim=-1)
        return weights if self._transform is None else self._transform(weights)

    @contextmanager
    def transformed(self, transform: Callable[[Tensor], Tensor]) -> Iterator[None]:
        """Within the block, the weights every supernet block uses are ``transform(weights)``:
        the perturbed weights of a smoothed weight step, or the masked and projected ones of
        perturbation-based selection."""
        previous, self._transform = self._transform, transform
        try:
            yield
        finally:
            self._transform = previous

    def derive(self) -> Dict[str, str]:
        """The genotype: for each edge the op with the largest ``α`` (spec §4)."""
        alpha = self.alpha.detach()
        diverged = [edge for edge, row in zip(EDGES, alpha) if not row.isfinite().all()]
        if diverged:
            raise ValueError(f'α of edge(s) {diverged} is not finite (NaN or inf): the search '
                             'diverged and no genotype can be derived. Resume from an earlier '
                             'checkpoint with lower learning rates.')
        best = alpha.argmax(dim=-1).tolist()
        return {edge: self.op_names[edge][j] for edge, j in zip(EDGES, best)}

    def table(self) -> str:
        """The weights (``softmax(α)``) as text, one line per edge: each op with its weight, the op
        :meth:`derive` picks marked with ``*`` (what the search logs every epoch)."""
        derived = self.derive()
        cells = []
        for edge, row in zip(EDGES, self.probabilities().tolist()):
            cells.append([f'{"*" if name == derived[edge] else " "}{name} {p:.4f}'
                          for name, p in zip(self.op_names[edge], row)])
        widths = [max(len(line[j]) for line in cells) for j in range(len(cells[0]))]
        return '\n'.join(
            (f'{edge:<4}' + '  '.join(cell.ljust(w) for cell, w in zip(line, widths))).rstrip()
            for edge, line in zip(EDGES, cells))

    @torch.no_grad()
    def set_genotype(self, genotype: GenotypeLike, logit: float = 30.0) -> None:
        """Set ``α`` to (scaled) one-hot rows selecting ``genotype``: ``logit`` for the chosen
        op, 0 elsewhere (``softmax`` then puts ``1 − 6·e^{-logit}`` on it)."""
        genotype = load_genotype(genotype)
        self.alpha.zero_()
        for i, edge in enumerate(EDGES):
            self.alpha[i, self.op_names[edge].index(genotype[edge])] = logit

    def extra_repr(self) -> str:
        return f'edges={len(EDGES)}, ops={self.alpha.shape[1]}, weighting={self.weighting!r}'


class SASESupernet(SASEDag):
    """The SASE block with a mixed operation on every edge (the search's supernet).

    Args:
        in_channels: channels of the input.
        arch: the shared :class:`ArchitectureParams` to bind (unregistered); ``None`` makes
            the block own a registered one until :meth:`bind` is called.
        fused: share work between the ops of an edge and between the edges ``cs``/``ss1``
            (:meth:`SASEDag.dag` with ``fast=True``); ``False`` runs the literal reference.
    """

    _abbr_ = 'sase_supernet'
    one_sweep_stats = True  # its squeeze edges need every moment of both axes

    def __init__(self,
                 in_channels: int,
                 arch: Optional[ArchitectureParams] = None,
                 fused: bool = True):
        check_channels(in_channels, 'in_channels')
        super().__init__(in_channels, {edge: MixedOp(EDGE_OP_SET[edge], in_channels, fused)
                                       for edge in EDGES})
        self.fused = fused
        if arch is None:
            self.arch = ArchitectureParams()
        else:
            self.bind(arch)

    @property
    def is_bound(self) -> bool:
        """Whether ``arch`` is a shared, unregistered :class:`ArchitectureParams`."""
        return 'arch' not in self._modules

    def bind(self, arch: ArchitectureParams) -> None:
        """Use the shared ``arch`` from now on, held unregistered (not a submodule): it does
        not appear in this block's ``parameters()``, ``state_dict()`` or ``.to()``."""
        if not isinstance(arch, ArchitectureParams):
            raise TypeError(f'expected ArchitectureParams, got {type(arch).__name__}')
        self._modules.pop('arch', None)
        object.__setattr__(self, 'arch', arch)

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

    def derive(self) -> Dict[str, str]:
        """The genotype currently selected by ``α`` (argmax per edge)."""
        return self.arch.derive()

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


def bind_architecture(model: nn.Module, arch: ArchitectureParams) -> int:
    """Bind ``arch`` to every :class:`SASESupernet` in ``model``; return how many."""
    blocks = [m for m in model.modules() if isinstance(m, SASESupernet)]
    for block in blocks:
        block.bind(arch)
    return len(blocks)
