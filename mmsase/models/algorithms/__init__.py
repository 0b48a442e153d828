from .architect import Architect
from .architecture_params import ArchitectureParams, SearchableBlock, bind_architecture
from .countermeasures import Countermeasures
from .darts import SASESearch
from .perturbation_selection import select_by_perturbation
from .spaces import SEARCH_SPACES, SearchSpace, register_space

__all__ = [
    'Architect', 'ArchitectureParams', 'Countermeasures', 'SASESearch', 'SEARCH_SPACES',
    'SearchableBlock', 'SearchSpace', 'bind_architecture', 'register_space',
    'select_by_perturbation'
]
