"""How much repeated SASE searches agree: winners per edge, agreement, entropy of softmax(α).

Given the final ``α`` (6 edges × 7 operations) of K searches that differ only in seed:

* **winners**: per run and edge the operation with the largest ``α`` (what the genotype
  takes, :meth:`ArchitectureParams.derive`);
* **modal agreement** of an edge: the share of runs whose winner is the edge's most frequent
  one (1 = every run agrees; 1/K when all differ; chance is about 1/7 per pair);
* **pairwise agreement**: for each pair of runs the share of the six edges with the same
  winner, averaged over pairs;
* **entropy** of ``softmax(α)`` per edge and run, in nats: ``ln 7 = 1.946`` is uniform (α has
  not moved; the winner is noise), 0 is one-hot;
* **margin**: the softmax weight of the winner minus that of the runner-up.
"""
import itertools
import math
from collections import Counter
from typing import Dict, Sequence

import torch

from ..models.search_space import EDGES, op_set


def op_names() -> Dict[str, tuple]:
    """The operations of each edge in ``α``'s column order."""
    return {edge: tuple(op_set(edge)) for edge in EDGES}  # as ArchitectureParams orders α


def entropy(probs: torch.Tensor) -> torch.Tensor:
    """Entropy (nats) of each row of ``probs``."""
    return -(probs * probs.clamp_min(1e-30).log()).sum(-1)


def stability(alphas: Sequence, seeds: Sequence[int]) -> dict:
    """The measures above for the final ``α`` of each run (``alphas[i]`` from seed
    ``seeds[i]``); everything per edge is keyed by edge name."""
    if len(alphas) != len(seeds) or not alphas:
        raise ValueError(f'need one α per seed, got {len(alphas)} for {len(seeds)} seeds')
    names = op_names()
    alpha = torch.as_tensor([list(a) for a in alphas], dtype=torch.float64)  # K × 6 × 7
    if alpha.shape[1:] != (len(EDGES), len(names[EDGES[0]])):
        raise ValueError(f'α must be {len(EDGES)} × {len(names[EDGES[0]])} per run, '
                         f'got {tuple(alpha.shape[1:])}')
    probs = alpha.softmax(-1)
    best = alpha.argmax(-1)  # K × 6
    top2 = probs.topk(2, dim=-1).values
    ent = entropy(probs)
    k = len(seeds)
    winners = [{edge: names[edge][int(best[r, e])] for e, edge in enumerate(EDGES)}
               for r in range(k)]
    edges = {}
    for e, edge in enumerate(EDGES):
        counts = Counter(w[edge] for w in winners)
        # the most frequent winner; ties go to the op first in the edge's set
        modal = max(names[edge], key=lambda op: (counts[op], -names[edge].index(op)))
        edges[edge] = dict(
            counts={op: counts[op] for op in names[edge] if counts[op]},
            modal=modal, agreement=counts[modal] / k,
            entropy=ent[:, e].tolist(), mean_entropy=float(ent[:, e].mean()),
            margin=(top2[:, e, 0] - top2[:, e, 1]).tolist(),
            probs=probs[:, e].tolist())
    pairs = list(itertools.combinations(range(k), 2))
    pairwise = [sum(winners[i][edge] == winners[j][edge] for edge in EDGES) / len(EDGES)
                for i, j in pairs]
    genotypes = Counter(tuple(w[edge] for edge in EDGES) for w in winners)
    return dict(
        seeds=list(seeds), winners=winners, edges=edges,
        pairwise_agreement=sum(pairwise) / len(pairwise) if pairs else math.nan,
        distinct_genotypes=len(genotypes), max_entropy=math.log(alpha.shape[-1]),
        op_names={edge: list(names[edge]) for edge in EDGES})
