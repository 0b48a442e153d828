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
import json
import os
import random
from types import MappingProxyType
from typing import Any, Dict, Mapping, Optional, Union

from ...utils.atomic_io import atomic_write
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

GenotypeLike = Union[None, Mapping[str, str], str, os.PathLike]


def allowed_ops(edge: str) -> tuple:
    """The names of the operations edge ``edge`` can take, in the set's order."""
    return tuple(OP_SETS[EDGE_OP_SET[edge]])


def validate_genotype(genotype: Mapping[str, Any]) -> Dict[str, str]:
    """Check a genotype and return it as a new dict in edge order, without metadata keys.

    Raises:
        ValueError: not a mapping, an unknown edge, a missing edge or an unknown operation;
            the message names the bad entry and lists the allowed edges or operations.
    """
    if not isinstance(genotype, Mapping):
        raise ValueError('a genotype must be a mapping from edge to operation name, got '
                         f'{type(genotype).__name__}; edges: {", ".join(EDGES)}')
    keys = [k for k in genotype if not (isinstance(k, str) and k.startswith('_'))]
    unknown = [k for k in keys if k not in EDGE_OP_SET]
    if unknown:
        raise ValueError(f'unknown edge(s) {", ".join(map(repr, unknown))} in genotype; '
                         f'allowed edges: {", ".join(EDGES)}')
    missing = [e for e in EDGES if e not in genotype]
    if missing:
        raise ValueError(f'genotype is missing edge(s) {", ".join(map(repr, missing))}; '
                         f'required edges: {", ".join(EDGES)}')
    for edge in EDGES:
        op = genotype[edge]
        if op not in allowed_ops(edge):
            raise ValueError(f'unknown operation {op!r} for edge {edge!r} '
                             f'({EDGE_OP_SET[edge]}); allowed: {", ".join(allowed_ops(edge))}')
    return {edge: genotype[edge] for edge in EDGES}


def load_genotype(source: GenotypeLike = None) -> Dict[str, str]:
    """A validated genotype from ``None`` (the paper's), a mapping, or a JSON file path.

    Raises:
        FileNotFoundError: the path does not exist.
        ValueError: the file cannot be read, is not valid JSON, is not a JSON object, or holds
            an invalid genotype; the message names the file and the problem.
        TypeError: ``source`` is of another type.
    """
    if source is None:
        return dict(PAPER_GENOTYPE)
    if isinstance(source, Mapping):
        return validate_genotype(source)
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError('genotype must be None, a mapping or a path to a JSON file, got '
                        f'{type(source).__name__}')
    path = os.fspath(source)
    if not os.path.exists(path):
        raise FileNotFoundError(f'genotype file {path!r} does not exist')
    try:
        with open(path, encoding='utf-8') as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f'genotype file {path!r} is not valid JSON: {e}') from e
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f'cannot read genotype file {path!r}: {e}') from e
    try:
        return validate_genotype(data)
    except ValueError as e:
        raise ValueError(f'genotype file {path!r}: {e}') from e


def save_genotype(genotype: Mapping[str, str],
                  path: Union[str, os.PathLike],
                  metadata: Optional[Mapping[str, Any]] = None) -> None:
    """Write ``genotype`` (and optional ``_``-prefixed ``metadata``) to ``path`` as JSON.

    The write is atomic (:func:`~mmsase.utils.atomic_io.atomic_write`): readers see the old
    file or the new one, never a partial one.
    """
    data: Dict[str, Any] = validate_genotype(genotype)
    for key, value in (metadata or {}).items():
        if not (isinstance(key, str) and key.startswith('_')):
            raise ValueError(f'metadata keys must start with "_" (the loader ignores those), '
                             f'got {key!r}')
        data[key] = value
    atomic_write(path, json.dumps(data, indent=2) + '\n')


def random_genotype(seed: Optional[int] = None) -> Dict[str, str]:
    """A genotype with each edge's operation drawn uniformly and independently, using
    ``random.Random(seed)`` (the random-search ablation, spec §4)."""
    rng = random.Random(seed)
    return {edge: rng.choice(allowed_ops(edge)) for edge in EDGES}
