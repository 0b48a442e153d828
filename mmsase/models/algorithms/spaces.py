"""What a differentiable search chooses: one operation per edge of a DAG, and the genotype files
that record the choice.

A :class:`SearchSpace` names the edges (the rows of the architecture logits ``α``) and the
operations of each edge (its columns). SASE's space (:data:`mmsase.models.sase.SASE_SPACE`: 6
edges × 7 operations) and AutoLA's (:data:`mmsase.models.autola.AUTOLA_SPACE`: 10 edges × 9
primitives) are two instances; the search (:class:`~mmsase.models.algorithms.SASESearch`), its
hooks, the genotype files and ``tools/derive_genotype.py`` read everything space-specific from
here.

Genotype file (JSON; :meth:`SearchSpace.save`, :meth:`SearchSpace.load`): one key per edge, its
operation as value; any key starting with ``_`` is metadata the loader ignores::

    {"cs": "gap_gmp", "ce1": "fc", ..., "_epoch": 50}
"""
import json
import os
import random
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Dict, Mapping, Optional, Tuple, Union

from ...utils.atomic_io import atomic_write

GenotypeLike = Union[None, Mapping[str, str], str, os.PathLike]


@dataclass(frozen=True, eq=False)  # compared by identity: one object per space
class SearchSpace:
    """The edges of a searched DAG and the operations each can take.

    Args:
        name: the space's name in messages (``'SASE'``, ``'AutoLA'``).
        op_names: edge → its operations, in the order of ``α``'s columns; the mapping's order
            is the order of ``α``'s rows. Every edge has the same number of operations (``α``
            is one tensor).
        excluded: operations never chosen (AutoLA's ``'none'``: it is searched, its weight
            competes in the softmax, but the genotype keeps the best of the others).
        default: the genotype :meth:`load` returns for ``None`` (the paper's).
        edge_labels: optional edge → a short description for error messages.
    """

    name: str
    op_names: Mapping[str, Tuple[str, ...]]
    excluded: Tuple[str, ...] = ()
    default: Optional[Mapping[str, str]] = None
    edge_labels: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self):
        op_names = {edge: tuple(ops) for edge, ops in self.op_names.items()}
        widths = {len(ops) for ops in op_names.values()}
        if len(widths) != 1:
            raise ValueError(f'{self.name}: every edge must have the same number of '
                             f'operations (α is one tensor), got {widths}')
        for edge, ops in op_names.items():
            if not set(ops) - set(self.excluded):
                raise ValueError(f'{self.name}: edge {edge!r} has no operation that is not '
                                 f'excluded ({self.excluded})')
        object.__setattr__(self, 'op_names', MappingProxyType(op_names))
        if self.default is not None:
            object.__setattr__(self, 'default', MappingProxyType(self.validate(self.default)))

    @property
    def edges(self) -> Tuple[str, ...]:
        """The edges, in the order of ``α``'s rows."""
        return tuple(self.op_names)

    @property
    def num_ops(self) -> int:
        """Operations per edge (``α``'s columns)."""
        return len(next(iter(self.op_names.values())))

    def allowed(self, edge: str) -> Tuple[str, ...]:
        """The operations a genotype may give ``edge`` (its set less the excluded ones)."""
        return tuple(op for op in self.op_names[edge] if op not in self.excluded)

    def validate(self, genotype: Mapping[str, Any]) -> Dict[str, str]:
        """Check a genotype and return it as a new dict in edge order, without metadata keys.

        Raises:
            ValueError: not a mapping, an unknown edge, a missing edge or an operation the
                edge cannot take; the message names the bad entry and lists the allowed ones.
        """
        edges = ', '.join(self.edges)
        if not isinstance(genotype, Mapping):
            raise ValueError(f'a {self.name} genotype must be a mapping from edge to operation '
                             f'name, got {type(genotype).__name__}; edges: {edges}')
        keys = [k for k in genotype if not (isinstance(k, str) and k.startswith('_'))]
        unknown = [k for k in keys if k not in self.op_names]
        if unknown:
            raise ValueError(f'unknown edge(s) {", ".join(map(repr, unknown))} in {self.name} '
                             f'genotype; allowed edges: {edges}')
        missing = [e for e in self.edges if e not in genotype]
        if missing:
            raise ValueError(f'{self.name} genotype is missing edge(s) '
                             f'{", ".join(map(repr, missing))}; required edges: {edges}')
        for edge in self.edges:
            op = genotype[edge]
            if op not in self.allowed(edge):
                label = f' ({self.edge_labels[edge]})' if edge in self.edge_labels else ''
                raise ValueError(f'unknown operation {op!r} for edge {edge!r}{label}; '
                                 f'allowed: {", ".join(self.allowed(edge))}')
        return {edge: genotype[edge] for edge in self.edges}

    def load(self, source: GenotypeLike = None) -> Dict[str, str]:
        """A validated genotype from ``None`` (:attr:`default`), a mapping, or a JSON file.

        Raises:
            FileNotFoundError: the path does not exist.
            ValueError: the file cannot be read, is not valid JSON, is not a JSON object, or
                holds an invalid genotype; the message names the file and the problem.
            TypeError: ``source`` is of another type.
        """
        if source is None:
            if self.default is None:
                raise ValueError(f'the {self.name} space has no default genotype: give one')
            return dict(self.default)
        if isinstance(source, Mapping):
            return self.validate(source)
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
            return self.validate(data)
        except ValueError as e:
            raise ValueError(f'genotype file {path!r}: {e}') from e

    def save(self, genotype: Mapping[str, str], path: Union[str, os.PathLike],
             metadata: Optional[Mapping[str, Any]] = None) -> None:
        """Write ``genotype`` (and optional ``_``-prefixed ``metadata``) to ``path`` as JSON,
        atomically (:func:`~mmsase.utils.atomic_io.atomic_write`)."""
        data: Dict[str, Any] = self.validate(genotype)
        for key, value in (metadata or {}).items():
            if not (isinstance(key, str) and key.startswith('_')):
                raise ValueError(f'metadata keys must start with "_" (the loader ignores '
                                 f'those), got {key!r}')
            data[key] = value
        atomic_write(path, json.dumps(data, indent=2) + '\n')

    # One object per space (blocks check ``arch.space is self.search_space``): copies of a
    # model share it, and a pickled space is a reference to the registered one.
    def __copy__(self) -> 'SearchSpace':
        return self

    def __deepcopy__(self, memo) -> 'SearchSpace':
        return self

    def __reduce__(self):
        return registered_space, (self.name, )

    def random(self, seed: Optional[int] = None) -> Dict[str, str]:
        """Each edge's operation drawn uniformly and independently from :meth:`allowed`,
        in edge order, with ``random.Random(seed)`` (the random-search ablation)."""
        rng = random.Random(seed)
        return {edge: rng.choice(self.allowed(edge)) for edge in self.edges}


#: name → space, filled by the modules that define one (:func:`register_space`).
SEARCH_SPACES: Dict[str, SearchSpace] = {}


def register_space(space: SearchSpace) -> SearchSpace:
    """Make ``space`` known by name and by ``α``'s shape (:func:`space_of_alpha`)."""
    SEARCH_SPACES[space.name] = space
    return space


def registered_space(name: str) -> SearchSpace:
    """The registered space called ``name``."""
    import mmsase.models  # noqa: F401  (registers the shipped spaces)
    if name not in SEARCH_SPACES:
        raise ValueError(f'unknown search space {name!r}; known: {", ".join(SEARCH_SPACES)}')
    return SEARCH_SPACES[name]


def space_of_alpha(shape) -> SearchSpace:
    """The registered space whose ``α`` has ``shape`` (``(edges, ops)``), e.g. to read a
    search checkpoint.

    Raises:
        ValueError: no registered space, or several, have that shape.
    """
    import mmsase.models  # noqa: F401  (registers the shipped spaces)
    shape = tuple(shape)
    found = [s for s in SEARCH_SPACES.values() if (len(s.edges), s.num_ops) == shape]
    if len(found) != 1:
        known = ', '.join(f'{s.name} {len(s.edges)}x{s.num_ops}'
                          for s in SEARCH_SPACES.values())
        raise ValueError(f'no single search space has α of shape {shape} (known: {known})')
    return found[0]
