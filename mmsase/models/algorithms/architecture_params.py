"""The architecture logits ``α`` of a search space, and the supernet blocks that share them.

One :class:`ArchitectureParams` (``α``, one row per edge of a :class:`~.spaces.SearchSpace`)
is shared by every supernet block of a network (SASE's ``SASESupernet``, AutoLA's
``AutoLASupernet``: :class:`SearchableBlock`). Blocks hold it *unregistered* once bound
(:meth:`SearchableBlock.bind`, :func:`bind_architecture`), so ``network.parameters()`` yields
the weights ``w`` only and ``α`` lives in exactly one place — the module that owns it (the
search algorithm), which also saves it and moves it between devices. A block never bound owns
a registered ``ArchitectureParams`` of its own, so it also works standalone.
"""
from contextlib import contextmanager
from typing import Callable, Dict, Iterator, Optional

import torch
import torch.nn as nn
from torch import Tensor

from .spaces import GenotypeLike, SearchSpace

#: how the logits become operation weights: softmax per edge (DARTS) or an independent
#: sigmoid per operation (FairDARTS).
WEIGHTINGS = ('softmax', 'sigmoid')


def _default_space() -> SearchSpace:
    """The space of SASE's supernet block (SASE's, unless a benchmark extends it)."""
    from mmsase.models.sase.supernet import SASESupernet
    return SASESupernet.search_space


class ArchitectureParams(nn.Module):
    """The architecture logits ``α`` of a search space: one row per edge, one column per
    operation of that edge.

    Args:
        init_std: ``α ~ N(0, init_std²)`` (DARTS, SASE and AutoLA: 1e-3).
        weighting: ``'softmax'`` (DARTS) or ``'sigmoid'`` (FairDARTS).
        space: the :class:`~.spaces.SearchSpace` (default: that of SASE's supernet block).

    Row ``i`` belongs to ``space.edges[i]``, column ``j`` to ``op_names[edge][j]``.
    """

    def __init__(self, init_std: float = 1e-3, weighting: str = 'softmax',
                 space: Optional[SearchSpace] = None):
        super().__init__()
        if weighting not in WEIGHTINGS:
            raise ValueError(f'unknown weighting {weighting!r}; allowed: {WEIGHTINGS}')
        self.space = _default_space() if space is None else space
        self.weighting = weighting
        self.alpha = nn.Parameter(torch.empty(len(self.space.edges), self.space.num_ops))
        nn.init.normal_(self.alpha, 0.0, init_std)
        self._transform: Optional[Callable[[Tensor], Tensor]] = None

    @property
    def op_names(self):
        """Edge → its operations, in the order of ``α``'s rows and columns (the space's)."""
        return self.space.op_names

    def probabilities(self) -> Tensor:
        """The operation weights per edge, shape ``(edges, ops)``: ``softmax(α)`` (or
        ``σ(α)``), as changed by an active :meth:`transformed`."""
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

    def selectable(self) -> Tensor:
        """``(edges, ops)`` booleans: the operations a genotype may take (not excluded)."""
        return torch.tensor([[name not in self.space.excluded for name in self.op_names[e]]
                             for e in self.space.edges], device=self.alpha.device)

    def derive(self) -> Dict[str, str]:
        """The genotype: for each edge the op with the largest ``α`` among those it may take
        (excluded ones such as AutoLA's ``none`` are passed over)."""
        alpha = self.alpha.detach()
        diverged = [edge for edge, row in zip(self.space.edges, alpha)
                    if not row.isfinite().all()]
        if diverged:
            raise ValueError(f'α of edge(s) {diverged} is not finite (NaN or inf): the search '
                             'diverged and no genotype can be derived. Resume from an earlier '
                             'checkpoint with lower learning rates.')
        best = alpha.masked_fill(~self.selectable(), float('-inf')).argmax(dim=-1).tolist()
        return {edge: self.op_names[edge][j] for edge, j in zip(self.space.edges, best)}

    def table(self) -> str:
        """The weights (``softmax(α)``) as text, one line per edge: each op with its weight, the op
        :meth:`derive` picks marked with ``*`` (what the search logs every epoch)."""
        derived = self.derive()
        edges = self.space.edges
        cells = []
        for edge, row in zip(edges, self.probabilities().tolist()):
            cells.append([f'{"*" if name == derived[edge] else " "}{name} {p:.4f}'
                          for name, p in zip(self.op_names[edge], row)])
        widths = [max(len(line[j]) for line in cells) for j in range(len(cells[0]))]
        pad = max(len(edge) for edge in edges) + 1
        return '\n'.join(
            (f'{edge:<{pad}}' + '  '.join(cell.ljust(w) for cell, w in zip(line, widths)))
            .rstrip() for edge, line in zip(edges, cells))

    @torch.no_grad()
    def set_genotype(self, genotype: GenotypeLike, logit: float = 30.0) -> None:
        """Set ``α`` to (scaled) one-hot rows selecting ``genotype``: ``logit`` for the chosen
        op, 0 elsewhere (``softmax`` then puts ``1 − (K − 1)·e^{-logit}`` on it)."""
        genotype = self.space.load(genotype)
        self.alpha.zero_()
        for i, edge in enumerate(self.space.edges):
            self.alpha[i, self.op_names[edge].index(genotype[edge])] = logit

    def extra_repr(self) -> str:
        return (f'space={self.space.name!r}, edges={self.alpha.shape[0]}, '
                f'ops={self.alpha.shape[1]}, weighting={self.weighting!r}')


class SearchableBlock:
    """Mixin of supernet blocks: they read their operation weights from a shared
    :class:`ArchitectureParams` of their class's ``search_space``.

    A subclass sets ``search_space`` and calls :meth:`init_architecture` in ``__init__``;
    its forward reads ``self.arch.probabilities()``.
    """

    search_space: SearchSpace

    def init_architecture(self, arch: Optional[ArchitectureParams]) -> None:
        """Bind ``arch``, or (``None``) own a registered one until :meth:`bind` is called."""
        if arch is None:
            self.arch = ArchitectureParams(space=self.search_space)
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
        if arch.space is not self.search_space:
            raise ValueError(f'{type(self).__name__} searches the {self.search_space.name} '
                             f'space; the architecture given is of the {arch.space.name} space')
        self._modules.pop('arch', None)
        object.__setattr__(self, 'arch', arch)

    def derive(self) -> Dict[str, str]:
        """The genotype currently selected by ``α`` (argmax per edge)."""
        return self.arch.derive()


def searchable_blocks(model: nn.Module):
    """The :class:`SearchableBlock` modules of ``model``, in module order."""
    return [m for m in model.modules() if isinstance(m, SearchableBlock)]


def bind_architecture(model: nn.Module, arch: ArchitectureParams) -> int:
    """Bind ``arch`` to every supernet block of ``model``; return how many."""
    blocks = searchable_blocks(model)
    for block in blocks:
        block.bind(arch)
    return len(blocks)
