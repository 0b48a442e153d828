"""Attention blocks: mmcv plug-in layers registered in mmengine's root ``MODELS``.

One small module per block, each as its authors wrote it (see the module docstrings), each
declaring where it goes in a residual network (:mod:`.base`):

=========  ===========================================  =================================
block      paper                                        position
=========  ===========================================  =================================
SE         Hu et al., CVPR 2018                         after the last BN
CBAM       Woo et al., ECCV 2018                        after the last BN
ECA        Wang et al., CVPR 2020                       after the last BN
SRM        Lee et al., ICCV 2019                        after the last BN
GSoP       Gao et al., CVPR 2019 (GSoP-Net1)            after the last BN, last block only
GCT        Yang et al., CVPR 2020                       before every convolution
MCA        Jiang et al., AAAI 2024                      after the last BN
EANorm     Li, Li and Wen, AAAI 2024 (norm-guided)      after the last BN
SGE        Li et al., 2019 (the module EAN shares)      after the last BN
IEBN       Liang et al., 2020                           in place of the BN layers
SASE       Wang et al., 2024 (this package's search)    after the last BN
SEM        Zhong, Wen and Qin, 2022 (arXiv 2209.05680)  after the last BN
DIA        Huang et al., AAAI 2020 (DIANet)             after the last BN (stateful, EAN)
AutoLA     Ma et al., NeurIPS 2020 (HOGA, searched)     after the last BN
=========  ===========================================  =================================

:func:`build_attention` builds any of them by short name (``'cbam'``, ``'mca_skew'``, ...).
Blocks in the root registry are found by mmcv's ``build_plugin_layer`` whatever the scope, and
``type='mmsase.CBAM'`` reaches them through the mmsase registry's parent chain.
"""
from .autola import AutoLA, AutoLASupernet
from .base import AttentionBlock, is_stateful
from .cbam import CBAM
from .dia import DIA
from .eanorm import EANorm
from .eca import ECA
from .factory import SHORT_NAMES, build_attention, resolve_block
from .gct import GCT
from .gsop import GSoP
from .iebn import IEBN
from .mca import MCA
from .sase import SASE, SASESupernet
from .se import SE
from .sem import SEM
from .sge import SGE
from .srm import SRM

__all__ = [
    'AttentionBlock', 'build_attention', 'is_stateful', 'resolve_block', 'SHORT_NAMES', 'AutoLA',
    'AutoLASupernet', 'CBAM',
    'DIA', 'EANorm', 'ECA', 'GCT', 'GSoP', 'IEBN', 'MCA', 'SASE', 'SASESupernet', 'SE', 'SEM',
    'SGE', 'SRM'
]
