"""One factory for every attention block, by short name, registry name or class.

``build_attention('cbam', 256)`` builds a block the way timm's ``create_attn('cbam', 256)``
does, so a script can loop over names. Names shared with timm mean the same block where the
maths agrees: ``se`` and ``eca`` compute timm's ``SEModule`` / ``EcaModule`` (for the widths of
ResNet-50; see each block's docstring for the rounding of small widths). ``cbam`` is the
authors' CBAM, which differs from timm's ``CbamModule`` in small ways
(``build_attention('cbam', C, variant='timm')`` gives timm's); timm's ``ge`` (gather-excite)
and the other names of ``create_attn`` are not blocks of mmsase.
"""
from typing import Dict, Tuple, Type, Union

import torch.nn as nn
from mmengine.registry import MODELS

#: short name → (registered class name, default arguments).
SHORT_NAMES: Dict[str, Tuple[str, dict]] = {
    'se': ('SE', {}),
    'cbam': ('CBAM', {}),
    'eca': ('ECA', {}),
    'srm': ('SRM', {}),
    'gsop': ('GSoP', {}),
    'gct': ('GCT', {}),
    'mca': ('MCA', {}),
    'mca_skew': ('MCA', dict(moment='skew')),
    'eanorm': ('EANorm', {}),
    'sge': ('SGE', {}),
    'iebn': ('IEBN', {}),
    'sase': ('SASE', {}),
    'sem': ('SEM', {}),
    'dia': ('DIA', {}),
    'autola': ('AutoLA', {}),
}

BlockLike = Union[str, Type[nn.Module]]


class UnknownBlockError(KeyError):
    """An attention block name that is neither a short name nor registered."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


def known_blocks() -> str:
    """The short names and their classes, for error messages."""
    return ', '.join(f'{short} ({cls})' for short, (cls, _) in SHORT_NAMES.items())


def resolve_block(block: BlockLike) -> Tuple[Type[nn.Module], dict]:
    """``(class, default arguments)`` of a block given by short name (``'cbam'``), registry
    name (``'CBAM'``, ``'mmsase.CBAM'``) or class; any mmcv plug-in registered in mmengine's
    ``MODELS`` is accepted by its registry name too."""
    import mmsase.models.plugins  # noqa: F401  (registers the blocks)
    if isinstance(block, type):
        return block, {}
    if not isinstance(block, str) or not block:
        raise TypeError(f'an attention block is a name or a class, got {block!r}')
    short = SHORT_NAMES.get(block.lower())
    if short is not None:
        name, defaults = short
        return MODELS.get(name), dict(defaults)
    try:
        cls = MODELS.get(block)
    except KeyError:  # an unknown scope prefix
        cls = None
    if cls is None:
        raise UnknownBlockError(
            f'unknown attention block {block!r}; the registered blocks are: {known_blocks()}')
    return cls, {}


def build_attention(block: Union[BlockLike, dict], channels: int, **kwargs) -> nn.Module:
    """Build ``block`` for a ``channels``-wide feature map.

    Args:
        block: a short name (``'se'``, ``'cbam'``, ``'mca_skew'``, ... see
            :data:`SHORT_NAMES`), a registry name, a class, or a config dict with ``type``.
        channels: the block's channels (``in_channels``; ``num_features`` for IEBN).
        **kwargs: the block's other arguments (they override the short name's defaults).

    Example::

        for name in ('se', 'cbam', 'eca', 'srm', 'gct'):
            y = build_attention(name, 256)(x)
    """
    if isinstance(block, dict):
        kwargs = {**{k: v for k, v in block.items() if k != 'type'}, **kwargs}
        block = block['type']
    cls, defaults = resolve_block(block)
    return cls(channels, **{**defaults, **kwargs})
