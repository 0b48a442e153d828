"""ImageNet -> COCO hand-off: a backbone trained by an mmsase classification config
initialises the SASE detector completely (SASE blocks included). Both use
``mmsase.AttentionResNet``, so the state-dict keys are the same by construction."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

import mmsase

from .helpers import ROOT, run_tool


def classification_options(imagenet_root: str) -> list:
    root = imagenet_root.rstrip('/')
    return [
        'model.head.num_classes=4', 'data_preprocessor.num_classes=4',
        f'train_dataloader.dataset.data_root={root}',
        f'train_dataloader.dataset.classes={root}/meta/classes.txt',
        'train_dataloader.dataset.pipeline.1.scale=64',
        'train_dataloader.batch_size=8', 'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False',
        'train_cfg.max_epochs=1', 'val_cfg=None', 'val_dataloader=None',
        'val_evaluator=None', 'test_cfg=None', 'test_dataloader=None',
        'test_evaluator=None', 'default_hooks.logger.interval=1',
    ]


@pytest.fixture(scope='module')
def imagenet_checkpoint(imagenet_root, tmp_path_factory):
    """configs/sase/resnet50_sase_in1k.py trained for 2 iterations on generated ImageNet
    folders."""
    work_dir = str(tmp_path_factory.mktemp('in1k'))
    run_tool('tools/train.py', osp.join(ROOT, 'configs/sase/resnet50_sase_in1k.py'),
             '--work-dir', work_dir, '--cfg-options', *classification_options(imagenet_root))
    return osp.join(work_dir, 'epoch_1.pth')


def build_detector(checkpoint: str, config='faster_rcnn_r50_sase_1x_coco.py'):
    from mmdet.registry import MODELS
    cfg = Config.fromfile(mmsase.config_path(config))
    cfg.model.backbone.init_cfg.checkpoint = checkpoint
    init_default_scope('mmdet')
    detector = MODELS.build(cfg.model)
    detector.init_weights()
    return detector


@pytest.mark.slow
def test_detector_backbone_loads_every_imagenet_weight(imagenet_checkpoint):
    from mmsase.utils.checkpoint import load_checkpoint_file
    trained = load_checkpoint_file(imagenet_checkpoint)['state_dict']
    trained_backbone = {k[len('backbone.'):]: v for k, v in trained.items()
                        if k.startswith('backbone.')}
    detector = build_detector(imagenet_checkpoint)
    assert type(detector.backbone).__name__ == 'AttentionResNet'
    assert type(detector.backbone.layer1[0].sase).__name__ == 'SASE'
    loaded = detector.backbone.state_dict()
    # no missing and no unexpected backbone keys, SASE blocks included
    assert set(loaded) == set(trained_backbone)
    assert sum('.sase.' in k for k in loaded) > 100
    for key, value in trained_backbone.items():
        assert torch.equal(loaded[key], value), key


@pytest.mark.slow
def test_missing_imagenet_checkpoint_names_the_file(tmp_path):
    missing = str(tmp_path / 'resnet50_sase_in1k' / 'epoch_100.pth')
    with pytest.raises(Exception, match='epoch_100.pth.*does not exist'):
        build_detector(missing)


def test_detection_defaults_reach_sase_batchnorms():
    """Frozen stem + layer1 and norm_eval apply to the BN layers inside SASE blocks."""
    from mmdet.registry import MODELS
    cfg = Config.fromfile(mmsase.config_path('faster_rcnn_r50_sase_1x_coco.py'))
    assert cfg.model.backbone.frozen_stages == 1 and cfg.model.backbone.norm_eval
    assert cfg.model.backbone.type == 'mmsase.AttentionResNet'
    cfg.model.backbone.init_cfg = None
    init_default_scope('mmdet')
    backbone = MODELS.build(cfg.model.backbone)
    backbone.train()
    sase_bns = {name: m for name, m in backbone.named_modules()
                if '.sase.' in name and isinstance(m, torch.nn.modules.batchnorm._BatchNorm)}
    assert sase_bns
    assert all(not m.training for m in sase_bns.values())  # norm_eval
    frozen = [p.requires_grad for n, p in backbone.named_parameters()
              if n.startswith('layer1.') and '.sase.' in n]
    trainable = [p.requires_grad for n, p in backbone.named_parameters()
                 if n.startswith('layer2.') and '.sase.' in n]
    assert frozen and not any(frozen)
    assert trainable and all(trainable)
    # eval-mode BN statistics stay put through a training-mode forward
    before = {n: m.running_mean.clone() for n, m in sase_bns.items()}
    backbone(torch.randn(2, 3, 64, 64))
    assert all(torch.equal(before[n], m.running_mean) for n, m in sase_bns.items())
