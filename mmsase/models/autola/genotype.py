"""AutoLA's search space and genotypes: one primitive on each of HOGA's ten edges.

HOGA splits its input into 4 channel groups ``g1..g4``; node ``n_i`` (i = 1..4) sums one
operation on its own group ``g_i`` and one on each earlier node. Its ten edges, in the order of
``α``'s rows (the authors' ``model_search_attention_20.py``), are named ``n<i>_g`` (from the
group) and ``n<i>_n<j>`` (from node j)::

    n1_g | n2_g n2_n1 | n3_g n3_n1 n3_n2 | n4_g n4_n1 n4_n2 n4_n3

A genotype is a ``dict`` edge → primitive (:mod:`.operations`), and its JSON file has the
format of SASE's (``{"n1_g": "skip_connect", ..., "_epoch": 50}``;
:class:`~mmsase.models.algorithms.spaces.SearchSpace`). The authors write a genotype as
``Genotype(normal=[(op, input), ...])``, the edges of each node in decreasing weight order,
input 0 the group and j ≥ 1 node j: :func:`from_authors_genotype` and
:func:`to_authors_genotype` convert.
"""
from types import MappingProxyType
from typing import Dict, List, Mapping, Sequence, Tuple

from ..algorithms.spaces import SearchSpace, register_space
from .operations import PRIMITIVES

NODES = 4


def edge_name(node: int, source: int) -> str:
    """Edge into node ``node`` (1-based) from ``source``: 0 = the node's group, j = node j."""
    return f'n{node}_g' if source == 0 else f'n{node}_n{source}'


#: The edges, in the order of ``α``'s rows; each maps to ``(node, source)``.
EDGE_SOURCES: Mapping[str, Tuple[int, int]] = MappingProxyType({
    edge_name(node, source): (node, source)
    for node in range(1, NODES + 1) for source in range(node)})
EDGES: Tuple[str, ...] = tuple(EDGE_SOURCES)


def _edges_of(normal: Sequence[Tuple[str, int]]) -> Dict[str, str]:
    normal = list(normal)
    if len(normal) != len(EDGES):
        raise ValueError(f'an AutoLA genotype has {len(EDGES)} (primitive, input) entries '
                         f'(1 + 2 + 3 + 4 for nodes 1..4), got {len(normal)}')
    genotype, start = {}, 0
    for node in range(1, NODES + 1):
        entries = normal[start:start + node]
        start += node
        sources = sorted(source for _, source in entries)
        if sources != list(range(node)):
            raise ValueError(f'node {node} of the AutoLA genotype must take each of its inputs '
                             f'0..{node - 1} once, got inputs {[s for _, s in entries]}')
        for op, source in entries:
            genotype[edge_name(node, source)] = op
    return {edge: genotype[edge] for edge in EDGES}


def from_authors_genotype(normal: Sequence[Tuple[str, int]]) -> Dict[str, str]:
    """A genotype dict from the authors' ``Genotype.normal`` list: node i's ``i`` entries
    follow node i−1's, each ``(primitive, input)`` with input 0 the group, j node j.

    Raises:
        ValueError: not 10 entries, a node whose inputs are not each of its inputs once, or
            an unknown primitive (or ``none``, which a genotype never keeps).
    """
    return AUTOLA_SPACE.validate(_edges_of(normal))


def to_authors_genotype(genotype: Mapping[str, str]) -> List[Tuple[str, int]]:
    """The authors' ``normal`` list of a genotype (each node's edges in input order)."""
    genotype = AUTOLA_SPACE.validate(genotype)
    return [(genotype[edge], EDGE_SOURCES[edge][1]) for edge in EDGES]


#: The authors' searched genotype (``genotypes.py``, ``Attention``), the block the papers
#: evaluate; read-only.
AUTHORS_NORMAL = (('skip_connect', 0), ('sep_conv_3x3_spatial', 0), ('sep_conv_3x3', 1),
                  ('CBAM', 0), ('skip_connect', 2), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0),
                  ('skip_connect', 1), ('sep_conv_3x3', 3), ('dil_conv_3x3', 2))

#: AutoLA's search space: 10 edges × the 9 primitives; ``none`` is searched but never kept.
#: Its default genotype is the authors'.
AUTOLA_SPACE = register_space(SearchSpace(
    'AutoLA', {edge: PRIMITIVES for edge in EDGES}, excluded=('none', ),
    default=_edges_of(AUTHORS_NORMAL),
    edge_labels={edge: f'node {n} from ' + ('its group' if s == 0 else f'node {s}')
                 for edge, (n, s) in EDGE_SOURCES.items()}))

AUTHORS_GENOTYPE: Mapping[str, str] = AUTOLA_SPACE.default
