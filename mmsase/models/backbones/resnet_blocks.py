"""The residual blocks of :class:`~mmsase.models.backbones.AttentionResNet`.

mmpretrain's ``BasicBlock`` (ResNet-18/34) and ``Bottleneck`` (ResNet-50/101/152) that carry an
attention block where the block says it goes (:class:`~.attention.PlacesAttention`), train
under gradient checkpointing (``with_cp``, attention included) and, for the bottleneck, take
mmdet's ``dcn`` and ``plugins`` keys as mmdet's own ``Bottleneck`` does, with the same
sub-module names (``conv2`` is the deformable conv; a plug-in is named by mmcv's
``build_plugin_layer``), so an mmdet ResNet checkpoint with those keys loads unchanged.

Order inside a bottleneck (``+`` = identity addition)::

    conv1-bn1-relu-[after_conv1 plug-ins]-conv2(DCN)-bn2-relu-[after_conv2 plug-ins]
    -conv3-bn3-[attention]-[after_conv3 plug-ins]-drop_path + identity, relu

``before_conv`` blocks (GCT) sit on the inputs of conv1–conv3 and of the downsample conv,
``replace_norm`` blocks (IEBN) are bn1–bn3.
"""
from typing import List, Optional, Tuple

import torch.utils.checkpoint as cp
from mmcv.cnn import build_conv_layer, build_plugin_layer
from mmpretrain.models.backbones.resnet import BasicBlock, Bottleneck
from torch import Tensor

from .attention import PlacesAttention

#: where mmdet's ``plugins`` may go inside a bottleneck
PLUGIN_POSITIONS = ('after_conv1', 'after_conv2', 'after_conv3')


class CheckpointedResidual:
    """``forward = relu(residual(x))``, with the residual function (branch + identity) under
    :func:`torch.utils.checkpoint.checkpoint` when ``with_cp`` and the input needs a gradient,
    as mmpretrain's and mmdet's blocks do. Non-reentrant checkpointing, so that parameters
    reached only inside the function (an attention block, EAN's shared module) get their
    gradients; the RNG state is restored for the recomputation (drop path, dropout)."""

    with_cp: bool = False

    def residual(self, x: Tensor) -> Tensor:
        """The block's branch plus its identity, before the last ReLU."""
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        if self.with_cp and x.requires_grad:
            return self.relu(cp.checkpoint(self.residual, x, use_reentrant=False))
        return self.relu(self.residual(x))


class AttentionBasicBlock(CheckpointedResidual, PlacesAttention, BasicBlock):
    """mmpretrain's BasicBlock (ResNet-18/34) with an attention block where it goes:

    * ``after_last_norm``: ``out = relu(att(bn2(conv2(...))) + identity)`` (SE, CBAM, ...; as
      the SE and CBAM authors place it in their basic blocks), sub-module ``<abbr>``;
    * ``before_conv``: ``<abbr>1``, ``<abbr>2`` on the inputs of conv1 and conv2 and
      ``<abbr>_downsample`` on the downsample conv's (GCT);
    * ``replace_norm``: ``bn1`` and ``bn2`` are the block (IEBN).

    Shapes: ``(B, in_channels, H, W) -> (B, out_channels, H/stride, W/stride)``.
    """

    def attention_conv_inputs(self) -> List[Tuple[str, int]]:
        convs = [('1', self.in_channels), ('2', self.mid_channels)]
        if self.downsample is not None:
            convs.append(('_downsample', self.in_channels))
        return convs

    def attention_norms(self) -> List[Tuple[str, int]]:
        return [(self.norm1_name, self.mid_channels), (self.norm2_name, self.out_channels)]

    def residual(self, x: Tensor) -> Tensor:
        identity = x
        if self.downsample is not None:
            identity = self.downsample(self.before_conv('_downsample', x))
        out = self.relu(self.norm1(self.conv1(self.before_conv('1', x))))
        out = self.norm2(self.conv2(self.before_conv('2', out)))
        return self.drop_path(self.after_last_norm(out)) + identity


class AttentionBottleneck(CheckpointedResidual, PlacesAttention, Bottleneck):
    """mmpretrain's Bottleneck that carries an attention block where the block goes:

    * ``after_last_norm``: ``out = relu(att(bn3(conv3(...))) + identity)`` (SE, CBAM, ...;
      mmdet's ``position='after_conv3'``), sub-module ``<abbr>``;
    * ``before_conv``: ``<abbr>1``–``<abbr>3`` on the inputs of conv1–conv3 and
      ``<abbr>_downsample`` on the input of the downsample conv (GCT);
    * ``replace_norm``: ``bn1``–``bn3`` are the block (IEBN); the downsample's BN stays.

    Args:
        dcn (dict, optional): mmdet's key: conv2 is built from it (``dict(type='DCN',
            deform_groups=1, fallback_on_stride=False)``, mmcv's deformable convs);
            ``fallback_on_stride=True`` keeps a plain conv2.
        plugins (list[dict], optional): mmdet's key, already filtered to this stage:
            ``dict(cfg=dict(type=...), position='after_conv1'|'after_conv2'|'after_conv3')``;
            ``after_conv3`` plug-ins run after the attention block.
        **kwargs: mmpretrain's ``Bottleneck`` arguments.

    Shapes: ``(B, in_channels, H, W) -> (B, out_channels, H/stride, W/stride)``.
    """

    def __init__(self, *args, dcn: Optional[dict] = None, plugins: Optional[list] = None,
                 **kwargs):
        super().__init__(*args, **kwargs)
        self.dcn = dcn
        self.with_dcn = dcn is not None
        if dcn is not None:
            self._build_dcn(dict(dcn))
        self.plugin_names = {position: [] for position in PLUGIN_POSITIONS}
        channels = {'after_conv1': self.mid_channels, 'after_conv2': self.mid_channels,
                    'after_conv3': self.out_channels}
        for position in PLUGIN_POSITIONS:  # mmdet's order, so the state-dict keys match
            for plugin in plugins or []:
                if plugin['position'] == position:
                    self.plugin_names[position].append(
                        self._build_plugin(plugin['cfg'], channels[position]))

    def _build_dcn(self, dcn: dict) -> None:
        if dcn.pop('fallback_on_stride', False):
            return
        if self.conv_cfg is not None:
            raise ValueError(f'dcn={self.dcn!r} needs conv_cfg=None (mmdet\'s rule), got '
                             f'conv_cfg={self.conv_cfg!r}')
        self.conv2 = build_conv_layer(
            dcn, self.mid_channels, self.mid_channels, kernel_size=3,
            stride=self.conv2_stride, padding=self.dilation, dilation=self.dilation,
            bias=False)

    def _build_plugin(self, cfg: dict, channels: int) -> str:
        cfg = dict(cfg)
        name, layer = build_plugin_layer(cfg, in_channels=channels,
                                         postfix=cfg.pop('postfix', ''))
        if hasattr(self, name):
            raise ValueError(f'plug-in {name!r} is added twice to one bottleneck (or clashes '
                             f'with one of its modules): give each a distinct postfix')
        self.add_module(name, layer)
        return name

    def forward_plugins(self, position: str, x: Tensor) -> Tensor:
        for name in self.plugin_names[position]:
            x = getattr(self, name)(x)
        return x

    def attention_conv_inputs(self) -> List[Tuple[str, int]]:
        convs = [('1', self.in_channels), ('2', self.mid_channels), ('3', self.mid_channels)]
        if self.downsample is not None:
            convs.append(('_downsample', self.in_channels))
        return convs

    def attention_norms(self) -> List[Tuple[str, int]]:
        return [(self.norm1_name, self.mid_channels), (self.norm2_name, self.mid_channels),
                (self.norm3_name, self.out_channels)]

    def residual(self, x: Tensor) -> Tensor:
        identity = x
        if self.downsample is not None:
            identity = self.downsample(self.before_conv('_downsample', x))
        out = self.relu(self.norm1(self.conv1(self.before_conv('1', x))))
        out = self.forward_plugins('after_conv1', out)
        out = self.relu(self.norm2(self.conv2(self.before_conv('2', out))))
        out = self.forward_plugins('after_conv2', out)
        out = self.norm3(self.conv3(self.before_conv('3', out)))
        out = self.forward_plugins('after_conv3', self.after_last_norm(out))
        return self.drop_path(out) + identity
