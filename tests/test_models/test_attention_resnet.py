"""``AttentionResNet`` as the drop-in for mmpretrain's and mmdet's ResNet that it claims to be:
frozen stages (EAN's shared modules included), gradient checkpointing, mmdet's ``dcn`` /
``stage_with_dcn`` / ``plugins`` keys against mmdet's own ResNet with the same weights,
ResNet-18/34 basic blocks, and the errors both upstream ResNets raise.

Small widths (``base_channels=16``) and 32–64 px inputs keep each test to a second or two.
"""
import pytest
import torch
import torch.nn as nn
from torch.nn.modules.batchnorm import _BatchNorm

from mmsase.models.backbones import AttentionBasicBlock, AttentionBottleneck, AttentionResNet
from .helpers import Recorder, randomize_


def small(depth=50, **kwargs) -> AttentionResNet:
    kwargs.setdefault('stem_channels', 16)
    kwargs.setdefault('base_channels', 16)
    backbone = AttentionResNet(depth, **kwargs)
    backbone.init_weights()
    return backbone


# ---------------------------------------------------------------- frozen stages (issue 27.1)

@pytest.mark.parametrize('frozen_stages', [-1, 0, 1, 2, 3, 4])
def test_shared_modules_freeze_with_their_stage_only(frozen_stages):
    # CBAM has a BN inside (its spatial gate): it must stay in train mode where not frozen
    backbone = small(attention=dict(type='mmsase.CBAM', reduction=4), attention_shared=True,
                     frozen_stages=frozen_stages)
    backbone.train()
    for stage, module in enumerate(backbone.shared_attention):
        trains = stage >= frozen_stages  # stage i is layer{i+1}: frozen when frozen_stages > i
        assert module.training == trains, (frozen_stages, stage)
        assert module.spatial_bn.training == trains, (frozen_stages, stage)
        assert all(p.requires_grad == trains for p in module.parameters()), \
            (frozen_stages, stage)
        layer = getattr(backbone, f'layer{stage + 1}')
        assert all(p.requires_grad == trains for p in layer.parameters())
    stem = [backbone.conv1, backbone.bn1]
    assert all(p.requires_grad == (frozen_stages < 0) for m in stem for p in m.parameters())


@pytest.mark.parametrize('frozen_stages', [-1, 1, 3])
def test_shared_modules_of_trained_stages_get_gradients(frozen_stages):
    backbone = small(attention=dict(type='mmsase.CBAM', reduction=4), attention_shared=True,
                     frozen_stages=frozen_stages, out_indices=(3, ))
    for module in backbone.modules():  # a non-zero start, so every module has a gradient
        if isinstance(module, _BatchNorm) and module.weight is not None:
            nn.init.constant_(module.weight, 0.5)
    backbone.train()
    backbone(torch.randn(2, 3, 64, 64))[0].square().mean().backward()
    for stage, module in enumerate(backbone.shared_attention):
        grads = [p.grad for p in module.parameters()]
        if stage >= frozen_stages:
            assert all(g is not None and g.abs().sum() > 0 for g in grads), stage
        else:
            assert all(g is None for g in grads), stage


def test_frozen_stem_attention_keeps_eval_mode():
    backbone = small(attention=dict(type='mmsase.GCT'), frozen_stages=0)
    backbone.train()
    assert not backbone.gct1.training
    assert not any(p.requires_grad for p in backbone.gct1.parameters())
    assert backbone.layer1[0].gct1.training


# ---------------------------------------------------------- gradient checkpointing (27.5)

CP_CASES = {
    'se': dict(attention=dict(type='mmsase.SE', reduction=4)),
    'gct': dict(attention=dict(type='mmsase.GCT')),
    'iebn': dict(attention=dict(type='mmsase.IEBN')),
    'shared_sge': dict(attention=dict(type='mmsase.SGE', groups=4), attention_shared=True,
                       connection_code='101-1100-100101-011'),
    'cbam_r18': dict(depth=18, attention=dict(type='mmsase.CBAM', reduction=4)),
    'sase_drop_path': dict(attention=dict(type='mmsase.SASE'), drop_path_rate=0.2),
}


@pytest.mark.parametrize('case', sorted(CP_CASES))
def test_with_cp_gives_the_values_and_gradients_of_the_plain_run(case):
    kwargs = dict(CP_CASES[case])
    depth = kwargs.pop('depth', 50)
    torch.manual_seed(0)
    plain = small(depth, out_indices=(2, 3), **kwargs)
    randomize_(plain, seed=1)
    checkpointed = small(depth, out_indices=(2, 3), with_cp=True, **kwargs)
    checkpointed.load_state_dict(plain.state_dict())
    assert all(block.with_cp for layer in checkpointed.res_layers
               for block in getattr(checkpointed, layer))
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    results = []
    for net in (plain, checkpointed):
        net.double().train()
        inputs = x.clone().requires_grad_()
        torch.manual_seed(7)  # the drop-path draws
        outs = net(inputs)
        sum((o * torch.linspace(-1, 1, o.numel(), dtype=o.dtype).view_as(o)).sum()
            for o in outs).backward()
        results.append(([o.detach() for o in outs], inputs.grad,
                        {n: p.grad for n, p in net.named_parameters()}))
    (outs_a, gx_a, grads_a), (outs_b, gx_b, grads_b) = results
    for a, b in zip(outs_a, outs_b):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(gx_a, gx_b, rtol=1e-9, atol=1e-12)
    assert grads_a.keys() == grads_b.keys()
    attention_grads = 0
    for name, grad in grads_a.items():
        if grad is None:
            assert grads_b[name] is None, name
            continue
        torch.testing.assert_close(grad, grads_b[name], rtol=1e-9, atol=1e-12, msg=name)
        attention_grads += any(k in name for k in ('.se.', 'gct', 'iebn', 'bn1', 'shared',
                                                  'cbam', 'sase'))
    assert attention_grads > 0


def test_with_cp_trains_a_resnet50_with_attention():
    backbone = AttentionResNet(50, attention=dict(type='mmsase.SE'), with_cp=True)
    backbone.init_weights()
    backbone.train()
    optimizer = torch.optim.SGD(backbone.parameters(), lr=0.1)
    block = backbone.layer3[2]
    grads = []
    for _ in range(2):  # bn3 starts at 0 (zero_init_residual): SE gets a gradient in step 2
        optimizer.zero_grad()
        backbone(torch.randn(2, 3, 64, 64))[0].mean().backward()
        grads.append(block.se.fc1.weight.grad.abs().sum())
        optimizer.step()
    assert grads[0] == 0 and grads[1] > 0
    assert block.bn3.weight.abs().sum() > 0


# ----------------------------------------------------------- ResNet-18/34 (27.5)

@pytest.mark.parametrize('depth, blocks', [(18, (2, 2, 2, 2)), (34, (3, 4, 6, 3))])
def test_basic_block_depths_match_mmpretrain(depth, blocks):
    from mmpretrain.models.backbones import ResNet
    ours = AttentionResNet(depth, out_indices=(0, 1, 2, 3))
    theirs = ResNet(depth, out_indices=(0, 1, 2, 3))
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert tuple(len(getattr(ours, f'layer{i + 1}')) for i in range(4)) == blocks
    assert all(isinstance(b, AttentionBasicBlock) for b in ours.layer1)
    randomize_(theirs)
    ours.load_state_dict(theirs.state_dict())
    ours.eval()
    theirs.eval()
    x = torch.randn(1, 3, 64, 64)
    for a, b in zip(ours(x), theirs(x)):
        torch.testing.assert_close(a, b)


def test_basic_block_carries_the_block_after_bn2():
    backbone = small(18, attention=dict(type='mmsase.SE', reduction=4))
    backbone.eval()
    block = backbone.layer2[0]  # with a downsample
    assert block.se.in_channels == 32
    recorder = Recorder({'bn2': block.bn2, 'se': block.se, 'downsample': block.downsample,
                         'block': block})
    backbone(torch.randn(2, 3, 64, 64))
    recorder.remove()
    assert torch.equal(recorder.inputs['se'], recorder.outputs['bn2'])
    torch.testing.assert_close(recorder.outputs['block'],
                               torch.relu(recorder.outputs['se'] + recorder.outputs['downsample']))


def test_basic_block_before_conv_and_replace_norm():
    gct = small(34, attention=dict(type='mmsase.GCT'))
    first = gct.layer2[0]
    assert [first.gct1.in_channels, first.gct2.in_channels,
            first.gct_downsample.in_channels] == [16, 32, 16]
    assert not hasattr(first, 'gct3')
    iebn = small(18, attention=dict(type='mmsase.IEBN'))
    from mmsase.models.plugins import IEBN
    assert isinstance(iebn.layer1[0].bn1, IEBN) and isinstance(iebn.layer1[0].bn2, IEBN)
    assert not isinstance(iebn.layer2[0].downsample[1], IEBN)
    for net in (gct, iebn):
        net.train()
        net(torch.randn(2, 3, 32, 32))[0].sum().backward()


def test_basic_blocks_zero_init_bn2():
    backbone = small(18, attention=dict(type='mmsase.SE', reduction=4))
    assert all(float(b.bn2.weight.abs().sum()) == 0 for b in backbone.layer1)
    authors = small(18, attention=dict(type='mmsase.SE', reduction=4), zero_init_residual=False)
    assert all(bool((b.bn2.weight == 1).all()) for b in authors.layer1)


# --------------------------------------------------------------- bad depth (27.5)

def test_bad_depth_raises_key_error_like_upstream():
    from mmdet.models.backbones import ResNet as MMDetResNet
    from mmpretrain.models.backbones import ResNet as MMPretrainResNet
    for cls in (MMPretrainResNet, MMDetResNet, AttentionResNet):
        with pytest.raises(KeyError):
            cls(depth=42)
    with pytest.raises(KeyError, match=r'\[18, 34, 50, 101, 152\].*42'):
        AttentionResNet(42)


# ------------------------------------------------------ mmdet's dcn and plugins (27.5)

def mmdet_keys():
    dcn = dict(type='DCN', deform_groups=1, fallback_on_stride=False)
    plugins = [
        dict(cfg=dict(type='ContextBlock', ratio=1. / 4), stages=(False, True, True, True),
             position='after_conv3'),
        dict(cfg=dict(type='GeneralizedAttention', spatial_range=-1, num_heads=2,
                      attention_type='0010', kv_stride=2), stages=(False, False, True, True),
             position='after_conv2'),
        dict(cfg=dict(type='ContextBlock', ratio=1. / 4, postfix='_b'), position='after_conv1'),
    ]
    return dict(dcn=dcn, stage_with_dcn=(False, True, True, True), plugins=plugins)


def test_mmdet_keys_build_the_same_modules_and_outputs_as_mmdets_resnet():
    import mmcv.ops  # noqa: F401  (registers DCN)
    from mmdet.models.backbones import ResNet as MMDetResNet
    from mmdet.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    common = dict(base_channels=16, stem_channels=16, out_indices=(0, 1, 2, 3),
                  frozen_stages=1, norm_eval=True, style='pytorch')
    theirs = MMDetResNet(50, **common, **mmdet_keys())
    ours = AttentionResNet(50, **common, **mmdet_keys())
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert type(ours.layer2[0].conv2) is type(theirs.layer2[0].conv2)
    assert type(ours.layer1[0].conv2) is nn.Conv2d
    assert ours.layer3[1].plugin_names['after_conv3'] == ['context_block']
    assert ours.layer3[1].plugin_names['after_conv2'] == ['gen_attention_block']
    assert ours.layer1[0].plugin_names == {'after_conv1': ['context_block_b'],
                                           'after_conv2': [], 'after_conv3': []}
    randomize_(theirs, seed=3)
    with torch.no_grad():  # small offsets, so the deformable sampling is exercised
        for module in theirs.modules():
            if hasattr(module, 'conv_offset'):
                module.conv_offset.weight.normal_(0, 0.05)
    ours.load_state_dict(theirs.state_dict())
    ours.train()
    theirs.train()
    x = torch.randn(2, 3, 96, 96)  # mmcv's deformable conv wants a 3x3 input in layer4
    for a, b in zip(ours(x), theirs(x)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_mmdet_keys_combine_with_attention_and_checkpointing():
    import mmcv.ops  # noqa: F401
    from mmdet.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    backbone = small(attention=dict(type='mmsase.SE', reduction=4), with_cp=True,
                     out_indices=(0, 1, 2, 3), **mmdet_keys())
    block = backbone.layer3[0]
    assert isinstance(block, AttentionBottleneck) and hasattr(block, 'se')
    backbone.train()
    recorder = Recorder({'se': block.se, 'context': block.context_block})
    outs = backbone(torch.randn(2, 3, 96, 96))
    recorder.remove()
    assert torch.equal(recorder.inputs['context'], recorder.outputs['se'])  # attention first
    sum(o.mean() for o in outs).backward()
    assert block.conv2.weight.grad is not None and block.conv2.conv_offset.weight.grad is not None


def test_mmdet_keys_are_checked_as_mmdet_does():
    with pytest.raises(ValueError, match='basic blocks'):
        AttentionResNet(18, dcn=dict(type='DCN'))
    with pytest.raises(ValueError, match='stage_with_dcn'):
        AttentionResNet(50, dcn=dict(type='DCN'), stage_with_dcn=(True, ))
    with pytest.raises(ValueError, match='after_conv4'):
        AttentionResNet(50, plugins=[dict(cfg=dict(type='ContextBlock', ratio=0.25),
                                          position='after_conv4')])
    with pytest.raises(ValueError, match='conv_cfg'):
        AttentionResNet(50, dcn=dict(type='DCN'), stage_with_dcn=(True, ) * 4,
                        conv_cfg=dict(type='Conv2d'))


# ------------------------------------------------ counts of the ResNet-18 configs (27.5)

R18_PLAIN = 11_689_512  # torchvision's resnet18
R18_WIDTHS = (64, 128, 256, 512)  # basic-block output channels; two blocks per stage


def r18_extra(per_block) -> int:
    return sum(2 * per_block(c) for c in R18_WIDTHS)


@pytest.mark.parametrize('config, extra', [
    ('resnet/resnet18_in1k.py', 0),
    ('se/resnet18_se_in1k.py', r18_extra(lambda c: 2 * c * (c // 16) + c // 16 + c)),
    ('cbam/resnet18_cbam_in1k.py', r18_extra(lambda c: 2 * c * (c // 16) + c // 16 + c + 100)),
    ('eca/resnet18_eca_in1k.py', r18_extra(lambda c: 3)),
    # the paper's genotype: channel FC (2·C·C/16), two affines (2C) and 30 fixed parameters
    ('sase/resnet18_sase_in1k.py', r18_extra(lambda c: 2 * c * (c // 16) + 2 * c + 30)),
])
def test_resnet18_config_counts(config, extra):
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS
    from _tools import ROOT
    init_default_scope('mmpretrain')
    model = MODELS.build(Config.fromfile(f'{ROOT}/configs/{config}').model)
    assert sum(p.numel() for p in model.parameters()) == R18_PLAIN + extra


def test_faster_rcnn_with_dcn_and_attention_trains_a_step():
    """A shipped SASE detector config with mmdet's DCN keys added, as a user would add them."""
    import mmcv.ops  # noqa: F401
    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper
    from _tools import ROOT
    from .test_config_training import build_model, detector_batch
    cfg = Config.fromfile(f'{ROOT}/configs/sase/faster_rcnn_r50_sase_1x_coco.py')
    cfg.merge_from_dict({
        'model.backbone.dcn': dict(type='DCN', deform_groups=1, fallback_on_stride=False),
        'model.backbone.stage_with_dcn': (False, True, True, True)})
    torch.manual_seed(0)
    model = build_model(cfg)
    block = model.backbone.layer3[0]
    assert type(block.conv2).__name__ == 'DeformConv2dPack' and hasattr(block, 'sase')
    model.train()
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    offsets = block.conv2.conv_offset.weight.detach().clone()
    data = model.data_preprocessor(detector_batch(with_mask=False, size=160), True)
    loss, _ = model.parse_losses(model(**data, mode='loss'))
    assert torch.isfinite(loss)
    optim_wrapper.backward(loss)
    assert block.conv2.conv_offset.weight.grad.abs().sum() > 0
    assert block.conv2.weight.grad.abs().sum() > 0
    optim_wrapper.step()
    assert not torch.equal(offsets, block.conv2.conv_offset.weight)
