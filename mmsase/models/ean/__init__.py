"""EAN (Efficient Attention Network): connection codes for shared attention modules."""
from .code import ConnectionCode

__all__ = ['ConnectionCode']
