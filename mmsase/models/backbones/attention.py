"""Placing an attention block in a residual network, where the block says it belongs.

One mechanism serves every block and every residual network of mmsase (the ImageNet/COCO
``AttentionResNet`` and the CIFAR ResNets):

1. :meth:`AttentionPlacement.from_config` resolves a backbone's ``attention=`` config: the block
   class (short name, registry name or class, see :mod:`mmsase.models.plugins.factory`), its
   arguments, its position (``after_last_norm``, ``before_conv`` or ``replace_norm``; the
   block's own unless the config asks for another it allows), which blocks of a stage carry it
   (``'all'`` or ``'last'``) and per-stage arguments (``stage_args``).
2. :func:`attention_plan` says which residual blocks carry it.
3. Residual blocks inherit :class:`PlacesAttention`: they list their convolutions' inputs and
   their main-branch norms, and :meth:`PlacesAttention.place_attention` installs the block's
   modules under stable names: ``<abbr>`` after the last norm (``layer1.0.se``, as mmdet's
   plug-ins name it), ``<abbr>1..3`` / ``<abbr>_downsample`` before the convolutions
   (``layer1.0.gct2``), the norm's own name when replacing it (``layer1.0.bn2``). A checkpoint of
   a classifier therefore initialises the detector with the same block.
"""
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple, Type

import torch.nn as nn
from mmcv.cnn.bricks.plugin import infer_abbr
from torch import Tensor

from mmsase.models.plugins.base import (AFTER_LAST_NORM, ALL_BLOCKS, BEFORE_CONV,
                                        BLOCK_CHOICES, LAST_BLOCK, POSITIONS, REPLACE_NORM,
                                        AttentionBlock, is_stateful)
from mmsase.models.plugins.factory import resolve_block

#: Keys of an ``attention=`` config that the backbone reads (the rest are the block's).
PLACEMENT_KEYS = ('type', 'position', 'stage_args', 'postfix')


@dataclass(frozen=True)
class AttentionPlacement:
    """A resolved ``attention=`` config: what to build and where.

    Attributes:
        block: the block class.
        kwargs: its constructor's arguments besides the channels.
        position: one of :data:`~mmsase.models.plugins.base.POSITIONS`.
        blocks: ``'all'`` or ``'last'`` (residual blocks of a stage that carry it).
        stage_args: argument name → one value per stage (e.g. ECA's kernel sizes).
        name: the sub-module name (the block's ``_abbr_``).
    """
    block: Type[nn.Module]
    kwargs: Dict
    position: str = AFTER_LAST_NORM
    blocks: str = ALL_BLOCKS
    stage_args: Dict[str, tuple] = field(default_factory=dict)
    name: str = 'attention'

    @classmethod
    def from_config(cls, cfg: Optional[dict], num_stages: int) -> Optional['AttentionPlacement']:
        """Resolve ``cfg`` (``None`` = no attention) for a network of ``num_stages`` stages.

        ``cfg`` is ``dict(type=BLOCK, [position=...], [stage_args=dict(arg=(v1, v2, ...))],
        **block_arguments)``.
        """
        if cfg is None:
            return None
        if not isinstance(cfg, dict) or 'type' not in cfg:
            raise TypeError(f'attention must be a dict with a "type" key (e.g. '
                            f"dict(type='mmsase.CBAM')) or None, got {cfg!r}")
        block, defaults = resolve_block(cfg['type'])
        kwargs = {**defaults, **{k: v for k, v in cfg.items() if k not in PLACEMENT_KEYS}}
        label = block.__name__
        allowed = tuple(getattr(block, 'positions', (AFTER_LAST_NORM, )))
        position = cfg.get('position') or getattr(block, 'position', AFTER_LAST_NORM)
        if position not in POSITIONS:
            raise ValueError(f'attention position {position!r} of {label} is not one of '
                             f'{POSITIONS}')
        if position not in allowed:
            raise ValueError(
                f'{label} cannot be placed {position!r}: it goes {" or ".join(allowed)} '
                f'({_WHERE[allowed[0]]})')
        blocks = getattr(block, 'blocks', ALL_BLOCKS)
        if blocks not in BLOCK_CHOICES:
            raise ValueError(f'{label}.blocks must be one of {BLOCK_CHOICES}, got {blocks!r}')
        stage_args = dict(cfg.get('stage_args') or {})
        for arg, values in stage_args.items():
            if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) \
                    or len(values) != num_stages:
                raise ValueError(
                    f'attention stage_args {arg}={values!r} of {label} must give one value '
                    f'per stage: the network has {num_stages} stages')
            stage_args[arg] = tuple(values)
        name = cfg.get('postfix', '')
        return cls(block, kwargs, position, blocks, stage_args,
                   infer_abbr(block) + str(name))

    @property
    def label(self) -> str:
        return self.block.__name__

    def build(self, channels: int, stage: int) -> nn.Module:
        """The block for a ``channels``-wide input in stage ``stage`` (0-based)."""
        kwargs = dict(self.kwargs)
        kwargs.update({arg: values[stage] for arg, values in self.stage_args.items()})
        return self.block(channels, **kwargs)


_WHERE = {
    AFTER_LAST_NORM: 'after the last norm of a residual block',
    BEFORE_CONV: 'on the input of every convolution',
    REPLACE_NORM: 'in place of the BN layers',
}


def stage_flags(attention_stages, num_stages: int) -> Tuple[bool, ...]:
    """Expand ``attention_stages`` (None = every stage) into one flag per stage."""
    if attention_stages is None:
        return (True, ) * num_stages
    flags = tuple(bool(s) for s in attention_stages)
    if len(flags) != num_stages:
        raise ValueError(f'attention_stages has {len(flags)} entries '
                         f'({attention_stages!r}); the network has {num_stages} stages')
    return flags


def _block_bits(bits, stage: int, num_blocks: int) -> Tuple[bool, ...]:
    if isinstance(bits, str):
        if set(bits) - {'0', '1'}:
            raise ValueError(f'attention_blocks[{stage}] = {bits!r} must be a string of 0/1')
        bits = [c == '1' for c in bits]
    bits = tuple(bool(b) for b in bits)
    if len(bits) != num_blocks:
        raise ValueError(f'attention_blocks[{stage}] has {len(bits)} entries; stage '
                         f'{stage + 1} (layer{stage + 1}) has {num_blocks} blocks')
    return bits


def attention_plan(placement: Optional[AttentionPlacement],
                   stage_blocks: Sequence[int],
                   attention_stages=None,
                   attention_blocks=None) -> Tuple[Tuple[bool, ...], ...]:
    """Which residual blocks carry the block: one tuple of flags per stage.

    Args:
        placement: the resolved block (``None``: no block anywhere).
        stage_blocks: the number of residual blocks of each stage.
        attention_stages: one flag per stage (None = all).
        attention_blocks: optional, one entry per stage, each a sequence of 0/1 flags or a
            string such as ``'1001'`` (leftmost = first block). Blocks whose ``blocks`` is
            ``'last'`` (GSoP) must keep exactly the last block of each stage that has it.
    """
    num_stages = len(stage_blocks)
    stages = stage_flags(attention_stages, num_stages)
    if placement is None:
        return tuple((False, ) * n for n in stage_blocks)
    if placement.position != AFTER_LAST_NORM and attention_blocks is not None:
        raise ValueError(f'attention_blocks selects residual blocks for a block placed after '
                         f'their last norm; {placement.label} is placed {placement.position!r}')
    if attention_blocks is not None and len(attention_blocks) != num_stages:
        raise ValueError(f'attention_blocks has {len(attention_blocks)} entries '
                         f'({attention_blocks!r}); the network has {num_stages} stages')
    plan = []
    for stage, (enabled, num_blocks) in enumerate(zip(stages, stage_blocks)):
        if placement.blocks == LAST_BLOCK:
            default = (False, ) * (num_blocks - 1) + (True, )
        else:
            default = (True, ) * num_blocks
        bits = default if attention_blocks is None else _block_bits(
            attention_blocks[stage], stage, num_blocks)
        if placement.blocks == LAST_BLOCK and enabled and bits != default:
            raise ValueError(
                f'{placement.label} goes only in the last block of a stage (its authors '
                f'place it there); attention_blocks[{stage}] = {attention_blocks[stage]!r} '
                f'leaves layer{stage + 1} without its last block or puts it elsewhere: use '
                f'attention_stages to drop a whole stage')
        plan.append(tuple(b and enabled for b in bits))
    return tuple(plan)


class PlacesAttention:
    """Mixin for residual blocks that carry an attention block.

    A block lists its convolutions' inputs (:meth:`attention_conv_inputs`) and its
    main-branch norms (:meth:`attention_norms`); its ``forward`` calls :meth:`before_conv`
    on each convolution's input and :meth:`after_last_norm` on the residual branch.
    """

    attention_position: Optional[str] = None
    attention_name: Optional[str] = None
    #: whether :meth:`after_last_norm` applies the block (EAN's connection-code bit)
    attention_plugged: bool = True

    def attention_conv_inputs(self) -> List[Tuple[str, int]]:
        """``(postfix, in_channels)`` of each conv, the downsample conv as ``'_downsample'``."""
        raise NotImplementedError

    def attention_norms(self) -> List[Tuple[str, int]]:
        """``(attribute name, channels)`` of each norm of the main branch."""
        raise NotImplementedError

    def place_attention(self, placement: AttentionPlacement, stage: int) -> None:
        """Install ``placement``'s modules in this block (which is in stage ``stage``)."""
        self._check_checkpointing(placement.block)
        self.attention_position = placement.position
        self.attention_name = placement.name
        if placement.position == AFTER_LAST_NORM:
            self.add_module(placement.name, placement.build(self.out_channels, stage))
        elif placement.position == BEFORE_CONV:
            for postfix, channels in self.attention_conv_inputs():
                self.add_module(placement.name + postfix, placement.build(channels, stage))
        else:  # REPLACE_NORM: same names as the norms, so a checkpoint keeps its keys
            for attr, channels in self.attention_norms():
                setattr(self, attr, placement.build(channels, stage))

    def share_attention(self, module: nn.Module, plugged: bool = True) -> None:
        """Apply ``module``, owned by the backbone and shared by the blocks of a stage, after
        the last norm when ``plugged`` (EAN: :mod:`mmsase.models.backbones.shared_attention`).

        The block keeps an unregistered reference: the module's parameters belong to the
        backbone only, so the state dict holds one copy per stage and its gradient is the sum
        over the blocks that applied it.
        """
        self._check_checkpointing(module)
        self.attention_position = AFTER_LAST_NORM
        self.attention_name = None
        object.__setattr__(self, '_shared_attention', module)  # bypasses Module registration
        self.attention_plugged = plugged

    def _check_checkpointing(self, block) -> None:
        """A stateful block (DIA) cannot run under gradient checkpointing: recomputing the
        block in the backward pass would read the state its later blocks left."""
        if getattr(self, 'with_cp', False) and is_stateful(block):
            name = block.__name__ if isinstance(block, type) else type(block).__name__
            raise ValueError(f'{name} carries a state from block to block, which gradient '
                             f'checkpointing would recompute wrongly: build the backbone '
                             f'with with_cp=False')

    def before_conv(self, postfix: str, x: Tensor) -> Tensor:
        if self.attention_position != BEFORE_CONV:
            return x
        return getattr(self, self.attention_name + postfix)(x)

    def after_last_norm(self, x: Tensor) -> Tensor:
        if self.attention_position != AFTER_LAST_NORM or not self.attention_plugged:
            return x
        shared = self.__dict__.get('_shared_attention')
        return (shared if shared is not None else getattr(self, self.attention_name))(x)


def place_in_stem(owner: nn.Module, placement: Optional[AttentionPlacement],
                  conv_in_channels: int, norm_attr: str, norm_channels: int,
                  deep_stem: bool = False) -> Optional[str]:
    """Put ``placement``'s stem part in ``owner`` (a backbone): a block before the stem conv
    (``before_conv``; returned name ``<abbr>1``, applied by the backbone's forward) or the stem
    norm replaced (``replace_norm``). ``after_last_norm`` blocks have no stem part."""
    if placement is None or placement.position == AFTER_LAST_NORM:
        return None
    if deep_stem:
        raise ValueError(f'{placement.label} is placed {placement.position!r}, which covers '
                         f'the stem; the deep stem (deep_stem=True) is not supported with it')
    if placement.position == BEFORE_CONV:
        name = placement.name + '1'
        owner.add_module(name, placement.build(conv_in_channels, 0))
        return name
    setattr(owner, norm_attr, placement.build(norm_channels, 0))
    return None


def init_attention_weights(backbone: nn.Module) -> None:
    """Give every attention block of ``backbone`` its authors' initialisation back, after the
    backbone's generic one (Kaiming convs, BN weight 1) overwrote it."""
    for module in backbone.modules():
        if isinstance(module, AttentionBlock):
            module.init_weights()


def is_pretrained(init_cfg) -> bool:
    """Whether ``init_cfg`` loads a checkpoint (whose weights must then not be re-initialised)."""
    cfgs = init_cfg if isinstance(init_cfg, (list, tuple)) else [init_cfg]
    return any(isinstance(c, dict) and c.get('type') == 'Pretrained' for c in cfgs)
