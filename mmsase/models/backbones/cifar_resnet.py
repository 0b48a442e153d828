"""The CIFAR ResNet family of He et al. (16/32/64 channels, depth 6n+2), with attention."""
from typing import Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmengine.model import BaseModule

from mmsase.registry import MODELS
from .attention import (AttentionPlacement, PlacesAttention, attention_plan,
                        init_attention_weights, is_pretrained, place_in_stem)


class CifarBasicBlock(PlacesAttention, BaseModule):
    """conv3x3-BN-ReLU-conv3x3-BN-[attention] + shortcut, then ReLU.

    An attention block goes where it says it belongs (:class:`PlacesAttention`): after the
    second BN, before the identity addition (spec §1, Decision; SE, SASE, ...), before
    conv1/conv2 and the projection conv (GCT), or in place of bn1/bn2 (IEBN). Shapes: ``(B, in_channels, H, W) -> (B, out_channels, H/s, W/s)``.

    Args:
        shortcut (str): ``'pad'`` — He et al.'s option A for CIFAR: subsample and zero-pad
            the channels, no parameters (ResNet-20 has 0.27 M parameters);
            ``'conv'`` — option B, a 1×1 conv + BN projection.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 stride: int = 1,
                 shortcut: str = 'pad',
                 norm_cfg: dict = dict(type='BN'),
                 init_cfg=None):
        super().__init__(init_cfg)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = build_norm_layer(norm_cfg, out_channels)[1]
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = build_norm_layer(norm_cfg, out_channels)[1]

        self.shortcut_mode = shortcut
        self.stride = stride
        self.pad_channels = out_channels - in_channels
        self.downsample = None
        if shortcut == 'conv' and (stride != 1 or in_channels != out_channels):
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                build_norm_layer(norm_cfg, out_channels)[1])
        elif shortcut not in ('pad', 'conv'):
            raise ValueError(f"shortcut must be 'pad' or 'conv', got {shortcut!r}")

    def attention_conv_inputs(self):
        convs = [('1', self.in_channels), ('2', self.out_channels)]
        if self.downsample is not None:
            convs.append(('_downsample', self.in_channels))
        return convs

    def attention_norms(self):
        return [('bn1', self.out_channels), ('bn2', self.out_channels)]

    def _identity(self, x: torch.Tensor) -> torch.Tensor:
        if self.downsample is not None:
            return self.downsample(self.before_conv('_downsample', x))
        if self.stride != 1:
            x = x[:, :, ::self.stride, ::self.stride]
        if self.pad_channels > 0:
            half = self.pad_channels // 2
            x = F.pad(x, (0, 0, 0, 0, half, self.pad_channels - half))
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(self.before_conv('1', x))), inplace=True)
        out = self.after_last_norm(self.bn2(self.conv2(self.before_conv('2', out))))
        return F.relu(out + self._identity(x), inplace=True)


@MODELS.register_module()
class CifarResNet(BaseModule):
    """ResNet-20/32/44/56/110 for 32×32 inputs (three stages of 16, 32, 64 channels).

    Args:
        depth (int): ``6n + 2``; each stage has ``n`` basic blocks.
        attention (dict, optional): any registered block, placed where it says it belongs
            (:class:`CifarBasicBlock`): e.g. ``dict(type='SASE')``, the search supernet
            ``dict(type='SASESupernet')``, ``dict(type='mmsase.GCT')``; the keys of
            :class:`~mmsase.models.backbones.AttentionResNet`'s ``attention`` apply.
        attention_stages (Sequence[bool], optional): which of the 3 stages get it.
        attention_blocks (Sequence, optional): per stage, which blocks get it (0/1 flags or
            a string such as ``'101'``, leftmost = first block).
        base_channels (int): width of the first stage (16); stages double it.
        shortcut (str): ``'pad'`` (option A, default) or ``'conv'`` (option B).
        out_indices (Sequence[int]): stages whose outputs are returned.

    Output: a tuple of ``(B, C_i, H_i, W_i)`` maps, the last ``(B, 64, H/4, W/4)``.
    """

    def __init__(self,
                 depth: int = 20,
                 attention: Optional[dict] = None,
                 attention_stages: Optional[Sequence[bool]] = None,
                 attention_blocks: Optional[Sequence] = None,
                 in_channels: int = 3,
                 base_channels: int = 16,
                 shortcut: str = 'pad',
                 out_indices: Sequence[int] = (2, ),
                 norm_cfg: dict = dict(type='BN'),
                 init_cfg=(dict(type='Kaiming', layer='Conv2d'),
                           dict(type='Constant', val=1, layer='_BatchNorm'))):
        super().__init__(init_cfg=list(init_cfg) if init_cfg else None)
        if not isinstance(depth, int) or depth < 8 or (depth - 2) % 6 != 0:
            raise ValueError(f'CifarResNet depth must be 6n+2 (20, 32, 44, 56, 110, ...), '
                             f'got {depth!r}')
        blocks_per_stage = (depth - 2) // 6
        self.attention = AttentionPlacement.from_config(attention, 3)
        plan = attention_plan(self.attention, (blocks_per_stage, ) * 3, attention_stages,
                              attention_blocks)
        if any(i not in (0, 1, 2) for i in out_indices):
            raise ValueError(f'out_indices must be within (0, 1, 2), got {out_indices!r}')
        self.depth = depth
        self.out_indices = tuple(out_indices)

        self.conv1 = nn.Conv2d(in_channels, base_channels, 3, 1, 1, bias=False)
        self.bn1 = build_norm_layer(norm_cfg, base_channels)[1]
        self.stem_attention_name = place_in_stem(self, self.attention, in_channels, 'bn1',
                                                 base_channels)
        self.res_layers = []
        channels = base_channels
        for stage in range(3):
            out_channels = base_channels * 2**stage
            blocks = []
            for i in range(blocks_per_stage):
                block = CifarBasicBlock(
                    channels,
                    out_channels,
                    stride=2 if (stage > 0 and i == 0) else 1,
                    shortcut=shortcut,
                    norm_cfg=norm_cfg)
                if plan[stage][i]:
                    block.place_attention(self.attention, stage)
                blocks.append(block)
                channels = out_channels
            name = f'layer{stage + 1}'
            self.add_module(name, nn.Sequential(*blocks))
            self.res_layers.append(name)

    def init_weights(self):
        super().init_weights()
        if not is_pretrained(self.init_cfg):
            init_attention_weights(self)

    def forward(self, x: torch.Tensor) -> tuple:
        if self.stem_attention_name is not None:
            x = getattr(self, self.stem_attention_name)(x)
        x = F.relu(self.bn1(self.conv1(x)), inplace=True)
        outs = []
        for i, name in enumerate(self.res_layers):
            x = getattr(self, name)(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)
