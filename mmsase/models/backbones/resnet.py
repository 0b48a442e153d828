"""ResNet for mmpretrain with an attention block after the last BN of every bottleneck."""
from typing import Optional, Sequence

from mmpretrain.models.backbones.resnet import Bottleneck, ResLayer, ResNet

from mmsase.registry import MODELS
from .attention import build_attention, stage_flags


class AttentionBottleneck(Bottleneck):
    """mmpretrain's Bottleneck with ``attention`` applied to the residual branch.

    ``out = relu(attention(bn3(conv3(...))) + identity)``, the placement of SE, CBAM and
    SASE (and mmdet's ``position='after_conv3'``).
    """

    def __init__(self, *args, attention: Optional[dict] = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.attention_name, attention_block = build_attention(
            attention, self.out_channels)
        if attention_block is not None:
            self.add_module(self.attention_name, attention_block)

    def forward(self, x):
        if self.with_cp and x.requires_grad:
            raise NotImplementedError(
                'with_cp is not supported by AttentionBottleneck yet')
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.norm1(self.conv1(x)))
        out = self.relu(self.norm2(self.conv2(out)))
        out = self.norm3(self.conv3(out))
        if self.attention_name is not None:
            out = getattr(self, self.attention_name)(out)
        out = self.drop_path(out)
        return self.relu(out + identity)


@MODELS.register_module()
class AttentionResNet(ResNet):
    """ResNet-50/101/152 whose bottlenecks carry an attention block.

    Args:
        depth (int): 50, 101 or 152.
        attention (dict, optional): config of any registered block taking
            ``in_channels`` (``dict(type='SASE')``, ``dict(type='SE')``,
            ``dict(type='SASE', genotype='work_dirs/search/genotype.json')``...).
            None gives mmpretrain's plain ResNet, with identical state-dict keys.
        attention_stages (Sequence[bool], optional): which stages get the block;
            None = all.
        **kwargs: the arguments of mmpretrain's ``ResNet``.

    The attention sub-modules are named like mmdet's plug-ins
    (``layer1.0.sase.*``), so a checkpoint of this backbone initialises mmdet's
    ``ResNet(plugins=[dict(cfg=dict(type='SASE'), position='after_conv3')])``.
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
                 **kwargs):
        if depth not in self.arch_settings:
            raise ValueError(f'AttentionResNet depth must be one of '
                             f'{sorted(self.arch_settings)}, got {depth!r}')
        self.attention = attention
        self.attention_stages = stage_flags(attention_stages,
                                            kwargs.get('num_stages', 4))
        self._stage_index = 0
        super().__init__(depth, **kwargs)

    def make_res_layer(self, **kwargs):
        with_attention = self.attention_stages[self._stage_index]
        self._stage_index += 1
        return ResLayer(
            attention=self.attention if with_attention else None, **kwargs)
