"""Registers the SASE blocks as plug-in layers.

They go into mmengine's root ``MODELS`` registry — where mmcv's ``build_plugin_layer`` looks,
whatever the current scope — so mmdet's ``ResNet(plugins=[dict(cfg=dict(type='SASE'),
position='after_conv3')])`` builds them, and ``type='mmsase.SASE'`` reaches them through the
mmsase registry's parent chain.
"""
from mmengine.registry import MODELS

from ..sase import SASE, SASESupernet

MODELS.register_module(module=SASE)
MODELS.register_module(module=SASESupernet)

__all__ = ['SASE', 'SASESupernet']
