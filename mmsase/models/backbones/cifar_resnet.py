"""The CIFAR ResNet family of He et al., with attention: basic blocks (16/32/64 channels, depth
6n+2: ResNet-20/32/56/110) and bottlenecks (64/128/256 channels, depth 9n+2: ResNet-29/164)."""
from typing import Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmengine.model import BaseModule

from mmsase.registry import MODELS
from .attention import (AttentionPlacement, PlacesAttention, init_attention_weights,
                        is_pretrained, place_in_stem)
from .shared_attention import SharesAttention, connection_plan


class CifarBasicBlock(PlacesAttention, BaseModule):
    """conv3x3-BN-ReLU-conv3x3-BN-[attention] + shortcut, then ReLU.

    An attention block goes where it says it belongs (:class:`PlacesAttention`): after the
    second BN, before the identity addition (spec §1, Decision; SE, SASE, ...), before
    conv1/conv2 and the projection conv (GCT), or in place of bn1/bn2 (IEBN). Shapes:
    ``(B, in_channels, H, W) -> (B, out_channels, H/s, W/s)``.

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


class CifarBottleneck(PlacesAttention, BaseModule):
    """conv1x1-BN-ReLU-conv3x3(stride)-BN-ReLU-conv1x1-BN-[attention] + shortcut, then ReLU.

    The bottleneck of the CIFAR ResNet-164 that the SEM, IEBN and EAN authors train (bearpaw/
    pytorch-classification's ``Bottleneck``, which Qrange-group/SEM and gbup-group/IEBN copy):
    ``planes`` wide inside, ``4·planes`` out, a 1×1 conv + BN projection shortcut whenever the
    shape changes (the first block of every stage), the stride on the 3×3 conv. An attention
    block goes where it says it belongs (:class:`PlacesAttention`): after bn3, before the
    identity addition (SE, SEM, ...), before conv1–conv3 and the projection conv (GCT), or in
    place of bn1–bn3 (IEBN; the projection's BN stays). Shapes: ``(B, in_channels, H, W) ->
    (B, 4·planes, H/s, W/s)``.
    """

    expansion = 4

    def __init__(self,
                 in_channels: int,
                 planes: int,
                 stride: int = 1,
                 norm_cfg: dict = dict(type='BN'),
                 init_cfg=None):
        super().__init__(init_cfg)
        self.in_channels = in_channels
        self.mid_channels = planes
        self.out_channels = planes * self.expansion
        self.stride = stride
        self.conv1 = nn.Conv2d(in_channels, planes, 1, bias=False)
        self.bn1 = build_norm_layer(norm_cfg, planes)[1]
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = build_norm_layer(norm_cfg, planes)[1]
        self.conv3 = nn.Conv2d(planes, self.out_channels, 1, bias=False)
        self.bn3 = build_norm_layer(norm_cfg, self.out_channels)[1]
        self.downsample = None
        if stride != 1 or in_channels != self.out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, self.out_channels, 1, stride, bias=False),
                build_norm_layer(norm_cfg, self.out_channels)[1])

    def attention_conv_inputs(self):
        convs = [('1', self.in_channels), ('2', self.mid_channels), ('3', self.mid_channels)]
        if self.downsample is not None:
            convs.append(('_downsample', self.in_channels))
        return convs

    def attention_norms(self):
        return [('bn1', self.mid_channels), ('bn2', self.mid_channels),
                ('bn3', self.out_channels)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x
        if self.downsample is not None:
            identity = self.downsample(self.before_conv('_downsample', x))
        out = F.relu(self.bn1(self.conv1(self.before_conv('1', x))), inplace=True)
        out = F.relu(self.bn2(self.conv2(self.before_conv('2', out))), inplace=True)
        out = self.after_last_norm(self.bn3(self.conv3(self.before_conv('3', out))))
        return F.relu(out + identity, inplace=True)


#: ``block=`` of :class:`CifarResNet` → (residual block, layers per block, example depths).
CIFAR_BLOCKS = {
    'basic': (CifarBasicBlock, 2, '20, 32, 44, 56, 110'),
    'bottleneck': (CifarBottleneck, 3, '29, 56, 110, 164'),
}


@MODELS.register_module()
class CifarResNet(SharesAttention, BaseModule):
    """The CIFAR ResNets of He et al. for 32×32 inputs: three stages at stride 1, 2, 2 after a
    conv3x3(16)-BN-ReLU stem, 16/32/64 ``planes`` wide.

    * ``block='basic'``: ResNet-20/32/44/56/110, depth ``6n + 2``, ``n`` basic blocks per
      stage (:class:`CifarBasicBlock`), stage outputs 16/32/64 channels.
    * ``block='bottleneck'``: ResNet-29/47/164, depth ``9n + 2``, ``n`` bottlenecks per stage
      (:class:`CifarBottleneck`), stage outputs 64/128/256 channels: ResNet-164 (n = 18) is
      the network of the SEM and IEBN papers (1,704,154 parameters with a 10-way classifier).

    Args:
        depth (int): ``6n + 2`` (basic) or ``9n + 2`` (bottleneck).
        block (str): ``'basic'`` or ``'bottleneck'``.
        attention (dict, optional): any registered block, placed where it says it belongs
            (:class:`CifarBasicBlock`, :class:`CifarBottleneck`): e.g. ``dict(type='SASE')``,
            the search supernet ``dict(type='SASESupernet')``, ``dict(type='mmsase.SEM')``,
            ``dict(type='mmsase.GCT')``; the keys of
            :class:`~mmsase.models.backbones.AttentionResNet`'s ``attention`` apply.
        attention_stages (Sequence[bool], optional): which of the stages get it.
        attention_blocks (Sequence, optional): per stage, which blocks get it (0/1 flags or
            a string such as ``'101'``, leftmost = first block).
        attention_shared (bool): EAN: one module per stage shared by the blocks that
            ``connection_code`` plugs (``shared_attention.<stage>``); see
            :class:`~mmsase.models.backbones.AttentionResNet`.
        connection_code (optional): EAN's code (:meth:`mmsase.models.ean.ConnectionCode.parse`;
            leftmost bit = first block); None = all plugged when shared.
        base_channels (int): the stem's width and the first stage's ``planes`` (16); stages
            double it.
        stage_blocks (Sequence[int], optional): residual blocks per stage, overriding the
            three equal stages that ``depth`` implies (``depth`` must then be
            ``2 + layers · sum``): AutoLA's search network, a CIFAR "ResNet-34", is
            ``depth=34, stage_blocks=(3, 4, 6, 3), shortcut='conv'`` (4 stages, 16/32/64/128).
        shortcut (str, optional): for basic blocks ``'pad'`` (option A, the default) or
            ``'conv'`` (option B); bottlenecks always project (``'conv'``, the default).
        out_indices (Sequence[int]): stages whose outputs are returned.

    Output: a tuple of ``(B, C_i, H_i, W_i)`` maps, the last ``(B, 64·e, H/4, W/4)`` with
    ``e`` = 1 (basic) or 4 (bottleneck) for three stages.
    """

    def __init__(self,
                 depth: int = 20,
                 attention: Optional[dict] = None,
                 attention_stages: Optional[Sequence[bool]] = None,
                 attention_blocks: Optional[Sequence] = None,
                 in_channels: int = 3,
                 base_channels: int = 16,
                 shortcut: Optional[str] = None,
                 out_indices: Sequence[int] = (2, ),
                 norm_cfg: dict = dict(type='BN'),
                 block: str = 'basic',
                 attention_shared: bool = False,
                 connection_code=None,
                 stage_blocks: Optional[Sequence[int]] = None,
                 init_cfg=(dict(type='Kaiming', layer='Conv2d'),
                           dict(type='Constant', val=1, layer='_BatchNorm'))):
        super().__init__(init_cfg=list(init_cfg) if init_cfg else None)
        if block not in CIFAR_BLOCKS:
            raise ValueError(f'CifarResNet block must be one of '
                             f"{', '.join(map(repr, CIFAR_BLOCKS))}, got {block!r}")
        block_cls, layers, examples = CIFAR_BLOCKS[block]
        if stage_blocks is None:
            if not isinstance(depth, int) or depth < 2 + 3 * layers \
                    or (depth - 2) % (3 * layers) != 0:
                raise ValueError(f'CifarResNet depth with {block} blocks must be '
                                 f'{3 * layers}n+2 ({examples}, ...), got {depth!r}')
            stage_blocks = ((depth - 2) // (3 * layers), ) * 3
        else:
            stage_blocks = tuple(stage_blocks)
            if not stage_blocks or not all(isinstance(n, int) and n > 0 for n in stage_blocks):
                raise ValueError('CifarResNet stage_blocks must be positive ints, one per '
                                 f'stage, got {stage_blocks!r}')
            if depth != 2 + layers * sum(stage_blocks):
                raise ValueError(f'CifarResNet depth={depth!r} does not match stage_blocks='
                                 f'{stage_blocks}: {block} blocks give depth 2 + {layers} x '
                                 f'{sum(stage_blocks)} = {2 + layers * sum(stage_blocks)}')
        num_stages = len(stage_blocks)
        if block == 'bottleneck' and shortcut not in (None, 'conv'):
            raise ValueError(f"bottleneck CifarResNets project their shortcuts (shortcut="
                             f"'conv'), got shortcut={shortcut!r}")
        self.attention = AttentionPlacement.from_config(attention, num_stages)
        self.attention_shared = bool(attention_shared)
        plan, code = connection_plan(self.attention, stage_blocks, attention_stages,
                                     attention_blocks, self.attention_shared, connection_code)
        if any(i not in range(num_stages) for i in out_indices):
            raise ValueError(f'out_indices must be within {tuple(range(num_stages))}, got '
                             f'{out_indices!r}')
        self.depth = depth
        self.block = block
        self.stage_blocks = stage_blocks
        self.out_indices = tuple(out_indices)

        self.conv1 = nn.Conv2d(in_channels, base_channels, 3, 1, 1, bias=False)
        self.bn1 = build_norm_layer(norm_cfg, base_channels)[1]
        self.stem_attention_name = place_in_stem(self, self.attention, in_channels, 'bn1',
                                                 base_channels)
        self.res_layers = []
        channels = base_channels
        for stage, num_blocks in enumerate(stage_blocks):
            planes = base_channels * 2**stage
            blocks = []
            for i in range(num_blocks):
                stride = 2 if (stage > 0 and i == 0) else 1
                if block == 'basic':
                    layer = CifarBasicBlock(channels, planes, stride=stride,
                                            shortcut=shortcut or 'pad', norm_cfg=norm_cfg)
                else:
                    layer = CifarBottleneck(channels, planes, stride=stride, norm_cfg=norm_cfg)
                if plan[stage][i]:
                    layer.place_attention(self.attention, stage)
                blocks.append(layer)
                channels = layer.out_channels
            if self.attention_shared:
                self.share_stage_attention(self.attention, stage, blocks, code.bits[stage])
            name = f'layer{stage + 1}'
            self.add_module(name, nn.Sequential(*blocks))
            self.res_layers.append(name)
        self.out_channels = channels
        self._connection_code = code

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
