"""The CIFAR ResNet family of He et al. (16/32/64 channels, depth 6n+2), with attention."""
from typing import Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmengine.model import BaseModule

from mmsase.registry import MODELS
from .attention import build_attention, stage_flags


class CifarBasicBlock(BaseModule):
    """conv3x3-BN-ReLU-conv3x3-BN-[attention] + shortcut, then ReLU.

    The attention block sits after the second BN, before the identity addition
    (spec §1, Decision). Shapes: ``(B, in_channels, H, W) -> (B, out_channels, H/s, W/s)``.

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
                 attention: Optional[dict] = None,
                 init_cfg=None):
        super().__init__(init_cfg)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = build_norm_layer(norm_cfg, out_channels)[1]
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = build_norm_layer(norm_cfg, out_channels)[1]
        self.attention_name, attention_block = build_attention(attention, out_channels)
        if attention_block is not None:
            self.add_module(self.attention_name, attention_block)

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

    def _identity(self, x: torch.Tensor) -> torch.Tensor:
        if self.downsample is not None:
            return self.downsample(x)
        if self.stride != 1:
            x = x[:, :, ::self.stride, ::self.stride]
        if self.pad_channels > 0:
            half = self.pad_channels // 2
            x = F.pad(x, (0, 0, 0, 0, half, self.pad_channels - half))
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = self.bn2(self.conv2(out))
        if self.attention_name is not None:
            out = getattr(self, self.attention_name)(out)
        return F.relu(out + self._identity(x), inplace=True)


@MODELS.register_module()
class CifarResNet(BaseModule):
    """ResNet-20/32/44/56/110 for 32×32 inputs (three stages of 16, 32, 64 channels).

    Args:
        depth (int): ``6n + 2``; each stage has ``n`` basic blocks.
        attention (dict, optional): block placed after the second BN of every basic
            block, e.g. ``dict(type='SASE')`` or the search supernet
            ``dict(type='SASESupernet')``.
        attention_stages (Sequence[bool], optional): which of the 3 stages get it.
        base_channels (int): width of the first stage (16); stages double it.
        shortcut (str): ``'pad'`` (option A, default) or ``'conv'`` (option B).
        out_indices (Sequence[int]): stages whose outputs are returned.

    Output: a tuple of ``(B, C_i, H_i, W_i)`` maps, the last ``(B, 64, H/4, W/4)``.
    """

    def __init__(self,
                 depth: int = 20,
                 attention: Optional[dict] = None,
                 attention_stages: Optional[Sequence[bool]] = None,
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
        flags = stage_flags(attention_stages, 3)
        if any(i not in (0, 1, 2) for i in out_indices):
            raise ValueError(f'out_indices must be within (0, 1, 2), got {out_indices!r}')
        self.depth = depth
        self.out_indices = tuple(out_indices)

        self.conv1 = nn.Conv2d(in_channels, base_channels, 3, 1, 1, bias=False)
        self.bn1 = build_norm_layer(norm_cfg, base_channels)[1]
        self.res_layers = []
        channels = base_channels
        for stage in range(3):
            out_channels = base_channels * 2**stage
            blocks = []
            for i in range(blocks_per_stage):
                blocks.append(
                    CifarBasicBlock(
                        channels,
                        out_channels,
                        stride=2 if (stage > 0 and i == 0) else 1,
                        shortcut=shortcut,
                        norm_cfg=norm_cfg,
                        attention=attention if flags[stage] else None))
                channels = out_channels
            name = f'layer{stage + 1}'
            self.add_module(name, nn.Sequential(*blocks))
            self.res_layers.append(name)

    def forward(self, x: torch.Tensor) -> tuple:
        x = F.relu(self.bn1(self.conv1(x)), inplace=True)
        outs = []
        for i, name in enumerate(self.res_layers):
            x = getattr(self, name)(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)
