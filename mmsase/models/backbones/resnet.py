"""ResNet-18/34/50/101/152 with any attention block, where its authors put it, for mmpretrain and mmdet.

One backbone serves classification and detection: the detectors' configs name
``type='mmsase.AttentionResNet'`` too, so an ImageNet checkpoint of any row initialises the
detector of the same row, attention included. Parameter names are mmpretrain's (= mmdet's =
torchvision's) for everything but the attention, so a plain checkpoint still loads.
"""
import warnings
from typing import Optional, Sequence

from mmpretrain.models.backbones.resnet import ResLayer, ResNet

from mmsase.registry import MODELS
from .attention import AttentionPlacement, init_attention_weights, is_pretrained, place_in_stem
from .resnet_blocks import PLUGIN_POSITIONS, AttentionBasicBlock, AttentionBottleneck
from .shared_attention import SharesAttention, connection_plan


@MODELS.register_module()
class AttentionResNet(SharesAttention, ResNet):
    """ResNet-18/34/50/101/152 whose residual blocks carry an attention block.

    A drop-in for mmpretrain's ``ResNet`` and mmdet's ``ResNet``: it takes every key of both
    (mmdet's ``dcn``, ``stage_with_dcn``, ``plugins`` and ``pretrained`` included) with the
    same meaning and the same state-dict keys. Its *defaults* are mmpretrain's
    (``out_indices=(3,)``, ``norm_eval=False``, ``stem_channels=64``); mmdet's detector configs
    set the keys they need (``out_indices=(0, 1, 2, 3)``, ``frozen_stages=1``,
    ``norm_eval=True``, ...), as ours do.

    Args:
        depth (int): 18, 34 (basic blocks; the block goes after bn2), 50, 101 or 152
            (bottlenecks; after bn3).
        attention (dict, optional): any registered block, by short name, registry name or
            class: ``dict(type='mmsase.CBAM')``, ``dict(type='gct')``,
            ``dict(type='mmsase.SASE', genotype='genotype.json')``. The block says where it
            goes (:mod:`mmsase.models.plugins.base`): after the last BN of every residual
            block (SE, CBAM, ECA, SRM, MCA, EANorm, SGE, SASE), the last block of each stage
            only (GSoP), before every convolution including the stem's and the downsample's
            (GCT) or in place of the stem BN and the blocks' BNs (IEBN). Extra keys:
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
            The module of stage ``i`` freezes with its stage (``frozen_stages > i``).
        connection_code (optional): EAN's code, any form of
            :meth:`mmsase.models.ean.ConnectionCode.parse` (``(4, 11, 19, 3)``,
            ``'1001011010011011'``, a JSON file, ...; leftmost bit = first block). Shared:
            which blocks apply their stage's module (None = all, changeable later with
            :meth:`set_connection_code`); not shared: which blocks get a module of their own.
        dcn (dict, optional): mmdet's key: deformable conv2 in the stages ``stage_with_dcn``
            selects (bottlenecks only, as in mmdet).
        stage_with_dcn (Sequence[bool]): one flag per stage.
        plugins (list[dict], optional): mmdet's key: ``dict(cfg=..., position=
            'after_conv1'|'after_conv2'|'after_conv3', stages=(...))`` (bottlenecks only);
            ``after_conv3`` plug-ins run after the attention block.
        pretrained (str, optional): mmdet's deprecated key, read as
            ``init_cfg=dict(type='Pretrained', checkpoint=pretrained)``.
        **kwargs: the arguments of mmpretrain's ``ResNet`` (``out_indices``,
            ``frozen_stages``, ``norm_eval``, ``style``, ``with_cp``, ``zero_init_residual``,
            ...). ``zero_init_residual=True`` (mmpretrain's default and our configs') starts
            every block's last BN weight at 0, so a block placed after it sees zeros at
            first; ``False`` is the attention papers' own recipe (BN weight 1).
    """
    arch_settings = {
        18: (AttentionBasicBlock, (2, 2, 2, 2)),
        34: (AttentionBasicBlock, (3, 4, 6, 3)),
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
                 dcn: Optional[dict] = None,
                 stage_with_dcn: Sequence[bool] = (False, False, False, False),
                 plugins: Optional[list] = None,
                 pretrained: Optional[str] = None,
                 **kwargs):
        if depth not in self.arch_settings:  # KeyError, as mmpretrain's and mmdet's ResNet
            raise KeyError(f'AttentionResNet depth must be one of '
                           f'{sorted(self.arch_settings)}, got {depth!r}')
        num_stages = kwargs.get('num_stages', 4)
        block, stage_blocks = self.arch_settings[depth]
        self._mmdet_keys = _check_mmdet_keys(block, num_stages, dcn, stage_with_dcn, plugins)
        if pretrained is not None:
            if kwargs.get('init_cfg') is not None:
                raise ValueError('init_cfg and pretrained cannot be given together '
                                 f'(pretrained={pretrained!r})')
            warnings.warn('AttentionResNet: pretrained is deprecated (as in mmdet), use '
                          "init_cfg=dict(type='Pretrained', checkpoint=...)")
            kwargs['init_cfg'] = dict(type='Pretrained', checkpoint=pretrained)
        self.attention = AttentionPlacement.from_config(attention, num_stages)
        self.attention_shared = bool(attention_shared)
        self.attention_plan, code = connection_plan(
            self.attention, stage_blocks[:num_stages], attention_stages,
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
        stage = len(self.res_layers)  # mmpretrain appends each stage after building it
        layer = ResLayer(**kwargs, **self._mmdet_keys[stage])
        if self.attention_shared:
            self.share_stage_attention(self.attention, stage, list(layer),
                                       self._initial_code.bits[stage])
        for block, carries in zip(layer, self.attention_plan[stage]):
            if carries:
                block.place_attention(self.attention, stage)
        return layer

    def _freeze_stages(self):
        super()._freeze_stages()
        modules = []
        if self.frozen_stages >= 0 and self.stem_attention_name is not None:
            modules.append(getattr(self, self.stem_attention_name))
        # the shared module of stage i (layer{i+1}) freezes with its stage: frozen_stages > i
        if self.attention_shared:
            modules += list(self.shared_attention)[:max(self.frozen_stages, 0)]
        for module in modules:
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


def _check_mmdet_keys(block, num_stages: int, dcn, stage_with_dcn, plugins) -> list:
    """mmdet's ``dcn``/``stage_with_dcn``/``plugins``, checked as mmdet does and split into one
    ``dict(dcn=..., plugins=...)`` of bottleneck arguments per stage."""
    if dcn is None and plugins is None:
        return [{} for _ in range(num_stages)]
    if block is not AttentionBottleneck:
        raise ValueError('dcn and plugins are keys of mmdet\'s Bottleneck; ResNet-18/34 '
                         '(basic blocks) take neither, as in mmdet')
    if dcn is not None and not isinstance(dcn, dict):
        raise TypeError(f'dcn must be a dict such as dict(type=\'DCN\', deform_groups=1), '
                        f'got {dcn!r}')
    if dcn is not None and len(stage_with_dcn) != num_stages:
        raise ValueError(f'stage_with_dcn={tuple(stage_with_dcn)!r} must have one flag per '
                         f'stage ({num_stages})')
    for plugin in plugins or []:
        if plugin.get('position') not in PLUGIN_POSITIONS:
            raise ValueError(f'plug-in {plugin!r}: position must be one of {PLUGIN_POSITIONS}')
        stages = plugin.get('stages')
        if stages is not None and len(stages) != num_stages:
            raise ValueError(f'plug-in {plugin!r}: stages must have one flag per stage '
                             f'({num_stages})')
    per_stage = []
    for stage in range(num_stages):
        keys = dict(dcn=dcn if dcn is not None and stage_with_dcn[stage] else None)
        if plugins is not None:
            keys['plugins'] = [
                {k: v for k, v in plugin.items() if k != 'stages'} for plugin in plugins
                if plugin.get('stages') is None or plugin['stages'][stage]]
        per_stage.append(keys)
    return per_stage
