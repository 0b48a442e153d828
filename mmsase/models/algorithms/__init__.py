from .architect import Architect
from .darts import SASESearch

__all__ = ['Architect', 'SASESearch']
