"""Attention blocks usable as mmcv plug-in layers (registered in mmengine's root ``MODELS``).

Importing this package registers ``SASE``, ``SASESupernet`` and ``SE``.
"""
from .sase import SASE, SASESupernet
from .se import SE

__all__ = ['SASE', 'SASESupernet', 'SE']
