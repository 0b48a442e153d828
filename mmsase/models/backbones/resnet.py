"""ResNet-50/101/152 with any attention block, where its authors put it, for mmpretrain and mmdet.

One backbone serves classification and detection: the detectors' configs name
``type='mmsase.AttentionResNet'`` too, so an ImageNet checkpoint of any row initialises the
detector of the same row, attention included. Parameter names are mmpretrain's (= mmdet's =
torchvision's) for everything but the attention, so a plain checkpoint still loads.
"""
from typing import List, Optional, Sequence, Tuple

from mmpretrain.models.backbones.resnet import Bottleneck, ResLayer, ResNet

from mmsase.registry import MODELS
from .attention import (AttentionPlacement, PlacesAttention, init_attention_weights,
                        is_pretrained, place_in_stem)
from .shared_attention import SharesAttention, connection_plan


class AttentionBottleneck(PlacesAttention, Bottleneck):
    """mmpretrain's Bottleneck that carries an attention block where the block goes:

    * ``after_last_norm``: ``out = relu(att(bn3(conv3(...))) + identity)`` (SE, CBAM, ...;
      mmdet's ``position='after_conv3'``), sub-module ``<abbr>``;
    * ``before_conv``: ``<abbr>1``–``<abbr>3`` on the inputs of conv1–conv3 and
      ``<abbr>_downsample`` on the input of the downsample conv (GCT);
    * ``replace_norm``: ``bn1``–``bn3`` are the block (IEBN); the downsample's BN stays.
    """

    def attention_conv_inputs(self) -> List[Tuple[str, int]]:
        convs = [('1', self.in_channels), ('2', self.mid_channels), ('3', self.mid_channels)]
        if self.downsample is not None:
            convs.append(('_downsample', self.in_channels))
        return convs

    def attention_norms(self) -> List[Tuple[str, int]]:
        return [(self.norm1_name, self.mid_channels), (self.norm2_name, self.mid_channels),
                (self.norm3_name, self.out_channels)]

    def forward(self, x):
        if self.with_cp and x.requires_grad:
            raise NotImplementedError('with_cp is not supported by AttentionBottleneck yet')
        identity = x
        if self.downsample is not None:
            identity = self.downsample(self.before_conv('_downsample', x))
        out = self.relu(self.norm1(self.conv1(self.before_conv('1', x))))
        out = self.relu(self.norm2(self.conv2(self.before_conv('2', out))))
        out = self.norm3(self.conv3(self.before_conv('3', out)))
        out = self.drop_path(self.after_last_norm(out))
        return self.relu(out + identity)


@MODELS.register_module()
class AttentionResNet(SharesAttention, ResNet):
    """ResNet-50/101/152 whose residual blocks carry an attention block.

    Args:
        depth (int): 50, 101 or 152.
        attention (dict, optional): any registered block, by short name, registry name or
            class: ``dict(type='mmsase.CBAM')``, ``dict(type='gct')``,
            ``dict(type='mmsase.SASE', genotype='genotype.json')``. The block says where it
            goes (:mod:`mmsase.models.plugins.base`): after the last BN of every bottleneck
            (SE, CBAM, ECA, SRM, MCA, EANorm, SGE, SASE), the last bottleneck of each stage
            only (GSoP), before every convolution including the stem's and the downsample's
            (GCT) or in place of the stem BN and bn1–bn3 (IEBN). Extra keys:
            ``position=`` asks for another position the block allows, ``stage_args=dict(
            kernel_size=(3, 5, 5, 7))`` gives an argument one value per stage.
            None gives mmpretrain's plain ResNet, with identical state-dict keys.
        attention_stages (Sequence[bool], optional): which stages carry it; None = all.
        attention_blocks (Sequence, optional): per stage, which blocks carry it (0/1 flags
            or a string such as ``'1001'``, leftmost = first block); for blocks placed after
            the last norm.
        attention_shared (bool): EAN: one module per stage, owned by the backbone as
            ``shared_attention`` (an ``nn.ModuleList``; state-dict keys
            ``shared_attention.<stage>.*``) and applied after the last norm of the blocks
            that ``connection_code`` plugs (:mod:`.shared_attention`). Only for blocks placed
            after the last norm; ``attention_stages``/``attention_blocks`` must stay None.
        connection_code (optional): EAN's code, any form of
            :meth:`mmsase.models.ean.ConnectionCode.parse` (``(4, 11, 19, 3)``,
            ``'1001011010011011'``, a JSON file, ...; leftmost bit = first block). Shared:
            which blocks apply their stage's module (None = all, changeable later with
            :meth:`set_connection_code`); not shared: which blocks get a module of their own.
        **kwargs: the arguments of mmpretrain's ``ResNet`` (``out_indices``,
            ``frozen_stages``, ``norm_eval``, ``style``, ... also what mmdet's detectors set).
    """
    arch_settings = {
        50: (AttentionBottleneck, (3, 4, 6, 3)),
        101: (AttentionBottleneck, (3, 4, 23, 3)),
        152: (AttentionBottleneck, (3, 8, 36, 3)),
    }

    def __init__(self,
                 depth: int,
                 attention: Optional[dict] = None,
                 attention_stages: Optional[Sequence[bool]] = None,
                 attention_blocks: Optional[Sequence] = None,
                 attention_shared: bool = False,
                 connection_code=None,
                 **kwargs):
        if depth not in self.arch_settings:
            raise ValueError(f'AttentionResNet depth must be one of '
                             f'{sorted(self.arch_settings)}, got {depth!r}')
        num_stages = kwargs.get('num_stages', 4)
        self.attention = AttentionPlacement.from_config(attention, num_stages)
        self.attention_shared = bool(attention_shared)
        self.attention_plan, code = connection_plan(
            self.attention, self.arch_settings[depth][1][:num_stages], attention_stages,
            attention_blocks, self.attention_shared, connection_code)
        self._initial_code = code
        self.stem_attention_name = None
        super().__init__(depth, **kwargs)
        self._connection_code = code

    def _make_stem_layer(self, in_channels, stem_channels):
        super()._make_stem_layer(in_channels, stem_channels)
        norm_attr = None if self.deep_stem else self.norm1_name
        self.stem_attention_name = place_in_stem(self, self.attention, in_channels, norm_attr,
                                                 stem_channels, self.deep_stem)

    def make_res_layer(self, **kwargs):
        layer = ResLayer(**kwargs)
        stage = len(self.res_layers)  # mmpretrain appends each stage after building it
        if self.attention_shared:
            self.share_stage_attention(self.attention, stage, list(layer),
                                       self._initial_code.bits[stage])
        for block, carries in zip(layer, self.attention_plan[stage]):
            if carries:
                block.place_attention(self.attention, stage)
        return layer

    def _freeze_stages(self):
        super()._freeze_stages()
        if self.frozen_stages >= 0 and self.stem_attention_name is not None:
            stem_attention = getattr(self, self.stem_attention_name)
            stem_attention.eval()
            for param in stem_attention.parameters():
                param.requires_grad = False
        if self.attention_shared:  # the shared modules of the frozen stages freeze with them
            for module in list(self.shared_attention)[:self.frozen_stages]:
                module.eval()
                for param in module.parameters():
                    param.requires_grad = False

    def init_weights(self):
        super().init_weights()
        if not is_pretrained(self.init_cfg):
            init_attention_weights(self)

    def forward(self, x):
        if self.stem_attention_name is not None:
            x = getattr(self, self.stem_attention_name)(x)
        return super().forward(x)
