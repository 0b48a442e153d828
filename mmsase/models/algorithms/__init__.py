from .architect import Architect
from .countermeasures import Countermeasures
from .darts import SASESearch
from .perturbation_selection import select_by_perturbation

__all__ = ['Architect', 'Countermeasures', 'SASESearch', 'select_by_perturbation']
