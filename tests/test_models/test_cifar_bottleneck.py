"""The bottleneck CIFAR ResNets (depth 9n+2: ResNet-29, ResNet-164): structure, every
attention position, and the parameter counts worked out from the authors' code
(BASELINES_CODE.md §9-§10: Qrange-group/SEM ``models/sem.py``, gbup-group/IEBN)."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmpretrain.models import ImageClassifier

from mmsase.models.backbones import CifarBottleneck, CifarResNet
from mmsase.models.plugins import GCT, IEBN, SE, SEM

from .helpers import Recorder, randomize_, single_thread  # noqa: F401 (autouse fixture)


def n_params(module):
    return sum(p.numel() for p in module.parameters())


def classifier(num_classes, attention=None, depth=164):
    """backbone + GAP + Linear(256 → classes), as the authors' network."""
    return ImageClassifier(
        backbone=dict(type='mmsase.CifarResNet', depth=depth, block='bottleneck',
                      attention=attention),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=num_classes, in_channels=256))


@pytest.mark.parametrize('num_classes, attention, expected', [
    (10, None, 1_704_154),
    (100, None, 1_727_284),
    (10, dict(type='mmsase.SEM'), 1_946_974),
    (100, dict(type='mmsase.SEM'), 1_970_104),
    (100, dict(type='mmsase.IEBN'), 1_751_508),
    (10, dict(type='mmsase.SE'), 1_906_258),  # SENet's C // 16 (configs/sem/README.md)
    (10, dict(type='mmsase.SE', divisor=8), 1_915_546),  # mmpretrain's / timm's rounding
])
def test_resnet164_parameter_counts(num_classes, attention, expected):
    assert n_params(classifier(num_classes, attention)) == expected


def test_resnet164_layout():
    net = CifarResNet(depth=164, block='bottleneck', out_indices=(0, 1, 2))
    assert [len(getattr(net, f'layer{i}')) for i in (1, 2, 3)] == [18, 18, 18]
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    projections = [n for n, m in net.named_modules() if n.endswith('downsample')]
    assert projections == ['layer1.0.downsample', 'layer2.0.downsample', 'layer3.0.downsample']
    assert len(convs) == 1 + 54 * 3 + 3  # 164 = 1 + 162 + the classifier; plus 3 projections
    assert net.conv1.out_channels == 16 and net.out_channels == 256
    block = net.layer2[0]
    assert (block.conv1.in_channels, block.conv1.out_channels) == (64, 32)
    assert block.conv2.stride == (2, 2) and block.conv1.stride == (1, 1)
    assert block.conv3.out_channels == 128 and block.downsample[0].stride == (2, 2)
    # 29 = 9·3 + 2: a small network for tests, same layout
    outs = CifarResNet(depth=29, block='bottleneck', out_indices=(0, 1, 2))(
        torch.randn(2, 3, 32, 32))
    assert [o.shape for o in outs] == [(2, 64, 32, 32), (2, 128, 16, 16), (2, 256, 8, 8)]


def test_bad_depth_block_or_shortcut_is_refused_with_a_reason():
    with pytest.raises(ValueError, match=r'with bottleneck blocks must be 9n\+2 \(29, 56'):
        CifarResNet(depth=32, block='bottleneck')
    with pytest.raises(ValueError, match=r'with basic blocks must be 6n\+2 \(20, 32'):
        CifarResNet(depth=29)
    with pytest.raises(ValueError, match="block must be one of 'basic', 'bottleneck'"):
        CifarResNet(depth=20, block='Bottleneck')
    with pytest.raises(ValueError, match="project their shortcuts"):
        CifarResNet(depth=29, block='bottleneck', shortcut='pad')
    assert CifarResNet(depth=56, block='bottleneck').layer1.__len__() == 6
    assert CifarResNet(depth=56).layer1.__len__() == 9


def test_basic_resnet_is_unchanged():
    """ResNet-20 keeps option A shortcuts, 269,722 parameters with a 10-way classifier (He et
    al.'s 0.27 M) and its state-dict names."""
    net = CifarResNet(depth=20)
    assert n_params(net) + 64 * 10 + 10 == 269_722
    keys = set(net.state_dict())
    assert 'layer1.0.conv1.weight' in keys and 'layer3.2.bn2.running_var' in keys
    assert not any('downsample' in k or 'conv3' in k or 'bn3' in k for k in keys)
    conv = CifarResNet(depth=20, shortcut='conv')
    assert 'layer2.0.downsample.0.weight' in conv.state_dict()
    se = CifarResNet(depth=20, attention=dict(type='se'))
    assert 'layer1.0.se.fc1.weight' in se.state_dict()


def bottleneck_reference(block, x):
    """conv1x1-BN-ReLU-conv3x3-BN-ReLU-conv1x1-BN (+ projection), then ReLU; eval-mode BN."""
    out = F.relu(_bn(F.conv2d(x, block.conv1.weight), block.bn1))
    out = F.relu(_bn(F.conv2d(out, block.conv2.weight, stride=block.stride, padding=1),
                     block.bn2))
    out = _bn(F.conv2d(out, block.conv3.weight), block.bn3)
    identity = x
    if block.downsample is not None:
        conv, bn = block.downsample
        identity = _bn(F.conv2d(x, conv.weight, stride=block.stride), bn)
    return F.relu(out + identity)


def _bn(v, bn):
    shape = (1, -1, 1, 1)
    return ((v - bn.running_mean.view(shape)) / torch.sqrt(bn.running_var.view(shape) + bn.eps)
            * bn.weight.view(shape) + bn.bias.view(shape))


@pytest.mark.parametrize('in_channels, planes, stride', [(16, 16, 1), (64, 32, 2), (64, 16, 1)])
def test_bottleneck_matches_its_formula(in_channels, planes, stride):
    block = randomize_(CifarBottleneck(in_channels, planes, stride)).double().eval()
    assert (block.downsample is None) == (stride == 1 and in_channels == 4 * planes)
    x = torch.randn(2, in_channels, 8, 8, dtype=torch.float64)
    torch.testing.assert_close(block(x), bottleneck_reference(block, x))


def test_after_last_norm_sits_between_bn3_and_the_addition():
    net = CifarResNet(depth=29, block='bottleneck', attention=dict(type='sem'))
    net.init_weights()
    net.eval()
    for layer in (net.layer1, net.layer2, net.layer3):
        assert all(isinstance(block.sem, SEM) for block in layer)
    block = net.layer2[0]
    assert block.sem.in_channels == 128
    rec = Recorder(dict(bn3=block.bn3, sem=block.sem, downsample=block.downsample, block=block))
    net(torch.randn(2, 3, 16, 16))
    rec.remove()
    assert torch.equal(rec.inputs['sem'], rec.outputs['bn3'])
    assert not torch.equal(rec.outputs['sem'], rec.outputs['bn3'])
    torch.testing.assert_close(rec.outputs['block'],
                               F.relu(rec.outputs['sem'] + rec.outputs['downsample']))


def test_before_conv_covers_the_stem_every_conv_and_the_projection():
    net = CifarResNet(depth=29, block='bottleneck', attention=dict(type='gct'))
    net.init_weights()
    net.eval()
    assert isinstance(net.gct1, GCT) and net.gct1.in_channels == 3
    block = net.layer2[0]
    widths = {name: getattr(block, name).in_channels
              for name in ('gct1', 'gct2', 'gct3', 'gct_downsample')}
    assert widths == dict(gct1=64, gct2=32, gct3=32, gct_downsample=64)
    assert not hasattr(net.layer2[1], 'gct_downsample')
    with torch.no_grad():  # make the gates act (GCT is the identity at init)
        for m in net.modules():
            if isinstance(m, GCT):
                m.gamma.fill_(0.7)
                m.beta.fill_(0.2)
    rec = Recorder(dict(gct1=net.gct1, conv1=net.conv1, gct3=block.gct3, conv3=block.conv3,
                        gct_ds=block.gct_downsample, ds_conv=block.downsample[0]))
    out = net(torch.randn(2, 3, 16, 16))[0]
    rec.remove()
    for gct, conv in (('gct1', 'conv1'), ('gct3', 'conv3'), ('gct_ds', 'ds_conv')):
        assert torch.equal(rec.inputs[conv], rec.outputs[gct]), gct
        assert not torch.equal(rec.inputs[gct], rec.outputs[gct]), gct
    assert torch.isfinite(out).all()


def test_replace_norm_replaces_the_stem_bn_and_bn1_to_bn3_not_the_projection_bn():
    net = CifarResNet(depth=29, block='bottleneck', attention=dict(type='iebn'))
    net.init_weights()
    assert isinstance(net.bn1, IEBN)
    for layer in (net.layer1, net.layer2, net.layer3):
        for block in layer:
            assert all(isinstance(getattr(block, f'bn{i}'), IEBN) for i in (1, 2, 3))
        assert type(layer[0].downsample[1]) is nn.BatchNorm2d
    assert net.layer3[0].bn3.num_features == 256 and net.layer3[0].bn1.num_features == 64
    out = net(torch.randn(2, 3, 16, 16))[0]
    assert out.shape == (2, 256, 4, 4) and torch.isfinite(out).all()


def test_attention_stages_and_blocks_select_bottlenecks():
    net = CifarResNet(depth=29, block='bottleneck', attention=dict(type='mmsase.SE'),
                      attention_stages=(False, True, True), attention_blocks=('111', '100', '011'))
    carriers = [f'{name}.{i}' for name in ('layer1', 'layer2', 'layer3')
                for i, block in enumerate(getattr(net, name)) if isinstance(
                    getattr(block, 'se', None), SE)]
    assert carriers == ['layer2.0', 'layer3.1', 'layer3.2']


SEM_CONFIGS = ['resnet164_cifar10', 'resnet164_se_cifar10', 'resnet164_sem_cifar10',
               'resnet164_cifar100', 'resnet164_se_cifar100', 'resnet164_sem_cifar100']


@pytest.mark.parametrize('name', SEM_CONFIGS)
def test_configs_carry_the_sem_papers_recipe(name):
    from mmengine.config import Config

    import mmsase
    cfg = Config.fromfile(mmsase.config_path(f'sem/{name}.py'))
    backbone = cfg.model.backbone
    assert (backbone.type, backbone.depth, backbone.block) == ('mmsase.CifarResNet', 164,
                                                               'bottleneck')
    tag = name.split('_')[1] if name.count('_') == 2 else None
    assert (backbone.get('attention') or {}).get('type') == (
        {'se': 'mmsase.SE', 'sem': 'mmsase.SEM'}.get(tag))
    if tag == 'se':
        assert backbone.attention.get('divisor', 1) == 1  # SENet's C // 16
    hooks = [h.type for h in cfg.get('custom_hooks', [])]
    assert hooks == (['mmsase.SEMDecisionHook'] if tag == 'sem' else [])
    classes = 100 if name.endswith('cifar100') else 10
    assert cfg.model.head.num_classes == cfg.data_preprocessor.num_classes == classes
    assert cfg.model.head.in_channels == 256
    for loader, split in (('train_dataloader', 'train'), ('val_dataloader', 'test'),
                          ('test_dataloader', 'test')):
        dataset = cfg[loader].dataset
        assert dataset.type == f'mmsase.CIFAR{classes}', loader
        assert (dataset.data_root, dataset.split) == (f'data/cifar{classes}', split), loader
    assert cfg.train_dataloader.batch_size == 128
    assert [t['type'] for t in cfg.train_dataloader.dataset.pipeline] == [
        'RandomCrop', 'RandomFlip', 'PackInputs']
    crop, flip = cfg.train_dataloader.dataset.pipeline[:2]
    assert (crop.crop_size, crop.padding, flip.prob, flip.direction) == (32, 4, 0.5,
                                                                       'horizontal')
    assert cfg.data_preprocessor.mean == pytest.approx([0.4914 * 255, 0.4822 * 255,
                                                        0.4465 * 255])
    assert cfg.data_preprocessor.std == pytest.approx([0.2023 * 255, 0.1994 * 255,
                                                       0.2010 * 255])
    optimizer = cfg.optim_wrapper.optimizer
    assert (optimizer.type, optimizer.lr, optimizer.momentum, optimizer.weight_decay) == (
        'SGD', 0.1, 0.9, 1e-4)
    schedule = cfg.param_scheduler
    assert (schedule.type, schedule.milestones, schedule.gamma) == ('MultiStepLR', [81, 122],
                                                                     0.1)
    assert cfg.train_cfg.max_epochs == 164


def test_cifar100_configs_read_cifar100(cifar100_root):
    """The CIFAR-100 twins build their data sets from the real on-disk format."""
    from mmengine.config import Config

    import mmsase
    from mmsase.registry import DATASETS
    cfg = Config.fromfile(mmsase.config_path('sem/resnet164_sem_cifar100.py'))
    dataset = DATASETS.build(dict(cfg.test_dataloader.dataset, data_root=cifar100_root,
                                  verify_md5=False))
    assert len(dataset) == 100 and len(dataset.metainfo['classes']) == 100
    sample = dataset[0]
    assert tuple(sample['inputs'].shape) == (3, 32, 32)
    assert 0 <= int(sample['data_samples'].gt_label) < 100
