"""Genotypes: the choice of one operation per edge of the SASE DAG.

A genotype is a plain ``dict`` mapping each of the six edges
(:data:`~mmsase.models.search_space.EDGES`: ``cs, ce1, ce2, ss1, ss2, se``) to the name of an
operation of the set that edge searches over (:data:`~mmsase.models.search_space.EDGE_OP_SET`).

File format (JSON), as written by :func:`save_genotype` and read by :func:`load_genotype`::

    {
      "cs": "gap_gmp",
      "ce1": "fc",
      "ce2": "affine",
      "ss1": "gap",
      "ss2": "l4",
      "se": "conv_3x3x2",
      "_source": "optional metadata: any key starting with '_' is ignored by the loader"
    }

The six edge keys are required; no other key without a leading ``_`` is allowed.
"""
import os
from types import MappingProxyType
from typing import Any, Dict, Mapping, Optional, Union

from ..algorithms.spaces import GenotypeLike, SearchSpace, register_space
from ..search_space import EDGE_OP_SET, EDGES, OP_SETS

#: The genotype found by the paper's search (spec §3, Figure 2). Read-only; copy with ``dict()``.
PAPER_GENOTYPE: Mapping[str, str] = MappingProxyType({
    'cs': 'gap_gmp',
    'ce1': 'fc',
    'ce2': 'affine',
    'ss1': 'gap',
    'ss2': 'l4',
    'se': 'conv_3x3x2',
})

#: The SASE search space: the six edges, each over its set's seven operations.
SASE_SPACE = register_space(SearchSpace(
    'SASE', {edge: tuple(OP_SETS[EDGE_OP_SET[edge]]) for edge in EDGES},
    default=PAPER_GENOTYPE, edge_labels=EDGE_OP_SET))

__all__ = ['PAPER_GENOTYPE', 'SASE_SPACE', 'GenotypeLike', 'allowed_ops', 'validate_genotype',
           'load_genotype', 'save_genotype', 'random_genotype']


def allowed_ops(edge: str) -> tuple:
    """The names of the operations edge ``edge`` can take, in the set's order."""
    return tuple(OP_SETS[EDGE_OP_SET[edge]])


def validate_genotype(genotype: Mapping[str, Any]) -> Dict[str, str]:
    """Check a genotype and return it as a new dict in edge order, without metadata keys
    (:meth:`SearchSpace.validate <mmsase.models.algorithms.spaces.SearchSpace.validate>`).

    Raises:
        ValueError: not a mapping, an unknown edge, a missing edge or an unknown operation;
            the message names the bad entry and lists the allowed edges or operations.
    """
    return SASE_SPACE.validate(genotype)


def load_genotype(source: GenotypeLike = None) -> Dict[str, str]:
    """A validated genotype from ``None`` (the paper's), a mapping, or a JSON file path.

    Raises:
        FileNotFoundError: the path does not exist.
        ValueError: the file cannot be read, is not valid JSON, is not a JSON object, or holds
            an invalid genotype; the message names the file and the problem.
        TypeError: ``source`` is of another type.
    """
    return SASE_SPACE.load(source)


def save_genotype(genotype: Mapping[str, str],
                  path: Union[str, os.PathLike],
                  metadata: Optional[Mapping[str, Any]] = None) -> None:
    """Write ``genotype`` (and optional ``_``-prefixed ``metadata``) to ``path`` as JSON.

    The write is atomic (:func:`~mmsase.utils.atomic_io.atomic_write`): readers see the old
    file or the new one, never a partial one.
    """
    SASE_SPACE.save(genotype, path, metadata)


def random_genotype(seed: Optional[int] = None) -> Dict[str, str]:
    """A genotype with each edge's operation drawn uniformly and independently, using
    ``random.Random(seed)`` (the random-search ablation, spec §4)."""
    return SASE_SPACE.random(seed)
