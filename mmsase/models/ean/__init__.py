"""EAN (Efficient Attention Network): connection codes for shared attention modules, and the
REINFORCE controller that searches them (``tools/ean_search.py``)."""
from .code import ConnectionCode
from .controller import ConnectionController
from .reinforce import EANReinforce

__all__ = ['ConnectionCode', 'ConnectionController', 'EANReinforce']
