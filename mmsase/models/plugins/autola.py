"""Registers AutoLA's blocks as plug-in layers (as :mod:`.sase` does SASE's): the searched HOGA
block ``AutoLA`` and the search's ``AutoLASupernet``, in mmengine's root ``MODELS``."""
from mmengine.registry import MODELS

from ..autola import AutoLA, AutoLASupernet

MODELS.register_module(module=AutoLA)
MODELS.register_module(module=AutoLASupernet)

__all__ = ['AutoLA', 'AutoLASupernet']
