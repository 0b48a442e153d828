"""The SASE block (spec §1), its supernet (spec §4) and genotype utilities (spec §3)."""
from .block import SASE, SASEDag, apply_attention
from .genotype import (PAPER_GENOTYPE, SASE_SPACE, load_genotype, random_genotype, save_genotype,
                       validate_genotype)
from .supernet import ArchitectureParams, MixedOp, SASESupernet, bind_architecture

__all__ = [
    'SASE', 'SASEDag', 'SASESupernet', 'MixedOp', 'ArchitectureParams', 'bind_architecture',
    'apply_attention', 'PAPER_GENOTYPE', 'SASE_SPACE', 'load_genotype', 'save_genotype',
    'validate_genotype', 'random_genotype'
]
