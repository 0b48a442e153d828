"""AutoLA (Ma et al., NeurIPS 2020): HOGA, its nine primitives, its search space and genotypes,
the searched block and the search's supernet."""
from .block import AutoLA, HOGADag
from .genotype import (AUTHORS_GENOTYPE, AUTOLA_SPACE, EDGES, from_authors_genotype,
                       to_authors_genotype)
from .operations import PRIMITIVES, build_primitive
from .supernet import AutoLASupernet, MixedPrimitive

__all__ = [
    'AutoLA', 'AutoLASupernet', 'HOGADag', 'MixedPrimitive', 'AUTHORS_GENOTYPE', 'AUTOLA_SPACE',
    'EDGES', 'PRIMITIVES', 'build_primitive', 'from_authors_genotype', 'to_authors_genotype'
]
