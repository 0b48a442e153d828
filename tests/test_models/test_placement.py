"""Every block goes where its authors put it, by one mechanism, in every mmsase backbone.

Small backbones (quarter-width ResNet-50, ResNet-8 for CIFAR) and tiny inputs: the wiring is
checked with forward hooks that record what each module receives and returns.
"""
import pytest
import torch
import torch.nn as nn

from mmsase.models.backbones import AttentionResNet, CifarResNet
from mmsase.models.plugins import (CBAM, DIA, AutoLA, ECA, GCT, IEBN, MCA, SE, SGE, SRM, EANorm,
                                   GSoP, build_attention)
from mmsase.models.plugins.factory import SHORT_NAMES, UnknownBlockError, resolve_block
from .helpers import Recorder, single_thread  # noqa: F401

AFTER_LAST_NORM_BLOCKS = ['se', 'cbam', 'eca', 'srm', 'mca', 'mca_skew', 'eanorm', 'sge', 'sase',
                          'sem', 'dia']


def small_resnet(attention=None, **kwargs) -> AttentionResNet:
    """ResNet-50's layout (3, 4, 6, 3) at a quarter of its width (stage widths 64..512)."""
    backbone = AttentionResNet(50, attention=attention, stem_channels=16, base_channels=16,
                               out_indices=(0, 1, 2, 3), **kwargs)
    backbone.init_weights()
    return backbone


def bottlenecks(backbone):
    for stage in range(4):
        layer = getattr(backbone, f'layer{stage + 1}')
        for index, block in enumerate(layer):
            yield f'layer{stage + 1}.{index}', stage, index, len(layer), block


@pytest.mark.parametrize('name', AFTER_LAST_NORM_BLOCKS)
def test_after_last_norm_blocks_sit_between_bn3_and_the_addition(name):
    backbone = small_resnet(dict(type=name))
    backbone.eval()  # mmpretrain's ResNet.train() returns None: no chaining
    cls, _ = resolve_block(name)
    abbr = cls._abbr_
    for path, _, _, _, block in bottlenecks(backbone):
        assert isinstance(getattr(block, abbr), cls), path
    block = backbone.layer2[0]  # a downsampling block
    recorder = Recorder({'bn3': block.bn3, 'att': getattr(block, abbr),
                         'downsample': block.downsample, 'block': block})
    backbone(torch.randn(2, 3, 64, 64))
    recorder.remove()
    assert torch.equal(recorder.inputs['att'], recorder.outputs['bn3'])
    expected = torch.relu(recorder.outputs['att'] + recorder.outputs['downsample'])
    torch.testing.assert_close(recorder.outputs['block'], expected)


def test_gsop_goes_in_the_last_block_of_each_stage_only():
    backbone = small_resnet(dict(type='mmsase.GSoP', reduced_channels=8,
                                 stage_args=dict(reduction_stride=(2, 1, 1, 1))))
    carriers = [path for path, _, _, _, block in bottlenecks(backbone) if hasattr(block, 'gsop')]
    assert carriers == ['layer1.2', 'layer2.3', 'layer3.5', 'layer4.2']
    assert backbone.layer1[2].gsop.conv_for_DR.stride == (2, 2)
    assert backbone.layer2[3].gsop.conv_for_DR.stride == (1, 1)
    backbone.eval()
    block = backbone.layer3[5]
    recorder = Recorder({'bn3': block.bn3, 'att': block.gsop})
    backbone(torch.randn(2, 3, 64, 64))
    recorder.remove()
    assert torch.equal(recorder.inputs['att'], recorder.outputs['bn3'])


def test_gct_goes_before_every_convolution():
    backbone = small_resnet(dict(type='mmsase.GCT'))
    backbone.eval()
    for _, _, index, _, block in bottlenecks(backbone):
        names = {n for n, _ in block.named_children() if n.startswith('gct')}
        expected = {'gct1', 'gct2', 'gct3'} | ({'gct_downsample'} if index == 0 else set())
        assert names == expected
        assert block.gct1.alpha.shape[1] == block.conv1.in_channels
        assert block.gct2.alpha.shape[1] == block.conv2.in_channels
        assert block.gct3.alpha.shape[1] == block.conv3.in_channels
    assert backbone.gct1.alpha.shape[1] == 3  # the stem conv's input, the image

    # non-trivial GCT parameters so that every GCT changes what it is given
    with torch.no_grad():
        for module in backbone.modules():
            if isinstance(module, GCT):
                module.gamma.uniform_(0.5, 1.5)
                module.beta.uniform_(-0.5, 0.5)
    block = backbone.layer2[0]
    watched = {n: getattr(block, n) for n in ('gct1', 'gct2', 'gct3', 'gct_downsample',
                                              'conv1', 'conv2', 'conv3')}
    watched.update(downsample_conv=block.downsample[0], stem_gct=backbone.gct1,
                   stem_conv=backbone.conv1, block=block)
    recorder = Recorder(watched)
    x = torch.randn(2, 3, 64, 64)
    backbone(x)
    recorder.remove()
    assert torch.equal(recorder.inputs['stem_gct'], x)
    assert torch.equal(recorder.inputs['stem_conv'], recorder.outputs['stem_gct'])
    for i in '123':
        assert torch.equal(recorder.inputs['conv' + i], recorder.outputs['gct' + i])
    assert not torch.equal(recorder.outputs['gct2'], recorder.inputs['gct2'])
    assert torch.equal(recorder.inputs['gct_downsample'], recorder.inputs['gct1'])
    assert torch.equal(recorder.inputs['downsample_conv'], recorder.outputs['gct_downsample'])


def test_iebn_replaces_the_stem_bn_and_bn1_to_bn3_but_not_the_shortcut_bn():
    backbone = small_resnet(dict(type='mmsase.IEBN'))
    assert isinstance(backbone.bn1, IEBN)
    for path, _, index, _, block in bottlenecks(backbone):
        for name in ('bn1', 'bn2', 'bn3'):
            assert isinstance(getattr(block, name), IEBN), f'{path}.{name}'
        if index == 0:
            shortcut_bn = block.downsample[1]
            assert type(shortcut_bn) is nn.BatchNorm2d, path
    plain = small_resnet()
    assert ({k for k in backbone.state_dict() if not k.endswith(('ie_weight', 'ie_bias'))}
            == set(plain.state_dict()))
    # mmpretrain's zero_init_residual still zeroes bn3's γ, and IEBN keeps its own init
    assert torch.all(backbone.layer1[0].bn3.weight == 0)
    assert torch.all(backbone.layer1[0].bn1.ie_bias == -1)


def test_blocks_keep_their_authors_initialisation_in_a_backbone():
    """The backbone's generic init (BN weight 1) does not overwrite CBAM's spatial BN weight 0."""
    backbone = small_resnet(dict(type='mmsase.CBAM'))
    cbams = [m for m in backbone.modules() if isinstance(m, CBAM)]
    assert len(cbams) == 16
    for cbam in cbams:
        assert torch.all(cbam.spatial_bn.weight == 0) and torch.all(cbam.fc1.bias == 0)
    plain_bn = backbone.layer1[0].bn1
    assert torch.all(plain_bn.weight == 1)  # the backbone's own init did run


def test_stage_args_give_one_value_per_stage():
    backbone = small_resnet(dict(type='mmsase.ECA', stage_args=dict(kernel_size=(3, 5, 5, 7))))
    kernels = [block.eca.conv.kernel_size[0] for _, _, _, _, block in bottlenecks(backbone)]
    assert kernels == [3] * 3 + [5] * 4 + [5] * 6 + [7] * 3
    with pytest.raises(ValueError, match=r'stage_args kernel_size=\(3, 5\) of ECA .* 4 stages'):
        small_resnet(dict(type='mmsase.ECA', stage_args=dict(kernel_size=(3, 5))))


def test_attention_stages_and_blocks_select_where_it_goes():
    backbone = small_resnet(dict(type='se'), attention_stages=(False, True, True, False),
                            attention_blocks=('111', '1001', '101011', '111'))
    carriers = [path for path, _, _, _, block in bottlenecks(backbone) if hasattr(block, 'se')]
    assert carriers == ['layer2.0', 'layer2.3', 'layer3.0', 'layer3.2', 'layer3.4', 'layer3.5']
    with pytest.raises(ValueError, match=r'attention_blocks\[1\] has 3 entries; stage 2 '
                                         r'\(layer2\) has 4 blocks'):
        small_resnet(dict(type='se'), attention_blocks=('111', '111', '111111', '111'))


def test_frozen_stem_freezes_the_stem_attention_too():
    backbone = small_resnet(dict(type='mmsase.GCT'), frozen_stages=1)
    backbone.train()
    assert not any(p.requires_grad for p in backbone.gct1.parameters())
    assert not backbone.gct1.training
    assert not any(p.requires_grad for p in backbone.layer1.parameters())
    assert all(p.requires_grad for p in backbone.layer2.parameters())


# ---------------------------------------------------------------------------------------------
# the CIFAR ResNets use the same mechanism
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize('name, where', [('se', 'se'), ('gct', 'gct1'), ('iebn', 'bn1')])
def test_cifar_resnet_places_blocks_the_same_way(name, where):
    net = CifarResNet(depth=8, attention=dict(type=name), shortcut='conv')
    net.init_weights()
    blocks = [net.layer1[0], net.layer2[0], net.layer3[0]]
    cls = type(build_attention(name, 16))
    for block in blocks:
        assert isinstance(getattr(block, where), cls)
    if name == 'gct':
        assert isinstance(net.gct1, GCT) and isinstance(net.layer2[0].gct_downsample, GCT)
    if name == 'iebn':
        assert isinstance(net.bn1, IEBN) and type(net.layer2[0].downsample[1]) is nn.BatchNorm2d
    out = net(torch.randn(2, 3, 16, 16))
    assert out[0].shape == (2, 64, 4, 4) and torch.isfinite(out[0]).all()


# ---------------------------------------------------------------------------------------------
# the factory and bad input
# ---------------------------------------------------------------------------------------------
def test_factory_builds_every_block_by_short_name():
    expected = dict(se=SE, cbam=CBAM, eca=ECA, srm=SRM, gsop=GSoP, gct=GCT, mca=MCA,
                    mca_skew=MCA, eanorm=EANorm, sge=SGE, iebn=IEBN, dia=DIA, autola=AutoLA)
    x = torch.randn(2, 128, 6, 6)
    for name, cls in expected.items():
        block = build_attention(name, 128)
        assert type(block) is cls, name
        assert block(x).shape == x.shape, name
    assert build_attention('mca_skew', 128).moment == 'skew'
    assert set(expected) | {'sase', 'sem'} == set(SHORT_NAMES)
    # registry names, scoped names, classes and config dicts reach the same classes
    assert type(build_attention('CBAM', 64)) is CBAM
    assert type(build_attention('mmsase.CBAM', 64)) is CBAM
    assert type(build_attention(CBAM, 64)) is CBAM
    assert build_attention(dict(type='eca', kernel_size=5), 64).conv.kernel_size == (5, )


def test_an_unknown_block_lists_the_registered_blocks():
    with pytest.raises(UnknownBlockError, match=r"unknown attention block 'cbamx'; the "
                                                r'registered blocks are: se \(SE\), cbam'):
        build_attention('cbamx', 64)
    with pytest.raises(UnknownBlockError, match='unknown attention block'):
        small_resnet(dict(type='mmsase.Nope'))


def test_a_block_placed_where_it_cannot_go_names_the_block_and_the_place():
    with pytest.raises(ValueError, match=r"IEBN cannot be placed 'after_last_norm': it goes "
                                         r"replace_norm \(in place of the BN layers\)"):
        small_resnet(dict(type='mmsase.IEBN', position='after_last_norm'))
    with pytest.raises(ValueError, match=r"SE cannot be placed 'before_conv'"):
        small_resnet(dict(type='se', position='before_conv'))
    with pytest.raises(ValueError, match=r"position 'somewhere' of SE is not one of"):
        small_resnet(dict(type='se', position='somewhere'))
    with pytest.raises(ValueError, match=r'GSoP goes only in the last block of a stage .* '
                                         r"attention_blocks\[2\] = '111111' leaves layer3"):
        small_resnet(dict(type='gsop', reduced_channels=8),
                     attention_blocks=('001', '0001', '111111', '001'))
    with pytest.raises(ValueError, match=r'GSoP goes only in the last block .* '
                                         r"attention_blocks\[0\] = '110'"):
        small_resnet(dict(type='gsop', reduced_channels=8),
                     attention_blocks=('110', '0001', '000001', '001'))
    with pytest.raises(ValueError, match='deep stem'):
        small_resnet(dict(type='gct'), deep_stem=True)


def test_iebn_as_an_mmdet_plugin_is_refused_with_a_reason():
    from mmcv.cnn import build_plugin_layer
    with pytest.raises(ValueError, match='IEBN .*replace'):
        build_plugin_layer(dict(type='IEBN'), in_channels=64)
