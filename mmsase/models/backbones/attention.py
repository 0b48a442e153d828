"""Placing an attention block inside a residual block.

Blocks are built with mmcv's ``build_plugin_layer`` so that a block gets the same
sub-module name (its ``_abbr_``, e.g. ``sase``) whether it sits in an mmsase backbone
(``attention=``) or in mmdet's ``ResNet`` (``plugins=[dict(cfg=..., position='after_conv3')]``).
That keeps checkpoints interchangeable between classification and detection.
"""
from typing import Optional, Tuple

import torch.nn as nn
from mmcv.cnn import build_plugin_layer

import mmsase.models.plugins  # noqa: F401  (registers the attention blocks)


def build_attention(cfg: Optional[dict],
                    channels: int) -> Tuple[Optional[str], Optional[nn.Module]]:
    """Build the attention block ``cfg`` for a ``channels``-wide feature map.

    Returns ``(name, module)``, or ``(None, None)`` when ``cfg`` is None.
    """
    if cfg is None:
        return None, None
    if not isinstance(cfg, dict) or 'type' not in cfg:
        raise TypeError(f'attention must be a dict with a "type" key (e.g. '
                        f"dict(type='SASE')) or None, got {cfg!r}")
    cfg = dict(cfg)
    postfix = cfg.pop('postfix', '')
    return build_plugin_layer(cfg, in_channels=channels, postfix=postfix)


def stage_flags(attention_stages, num_stages: int) -> Tuple[bool, ...]:
    """Expand ``attention_stages`` (None = every stage) into one flag per stage."""
    if attention_stages is None:
        return (True, ) * num_stages
    flags = tuple(bool(s) for s in attention_stages)
    if len(flags) != num_stages:
        raise ValueError(f'attention_stages has {len(flags)} entries '
                         f'({attention_stages!r}); the network has {num_stages} stages')
    return flags
