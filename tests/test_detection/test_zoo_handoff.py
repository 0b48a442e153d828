"""ImageNet → COCO for every row of the zoo: the checkpoint of ``resnet50_<block>_in1k.py``
initialises ``faster_rcnn_r50_<block>_1x_coco.py``'s backbone completely, attention included.

Both configs are the shipped ones, narrowed to a quarter of ResNet-50's width (the same keys,
a sixteenth of the weights) so that the twelve rows take seconds; the trained weights are
replaced by random values so that a tensor the detector failed to load cannot pass.
"""
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

import mmsase

BLOCKS = ['se', 'cbam', 'eca', 'srm', 'gsop', 'gct', 'mca', 'mca_skew', 'eanorm', 'sge', 'iebn',
          'sase']


def narrow(backbone_cfg) -> None:
    backbone_cfg.stem_channels = 16
    backbone_cfg.base_channels = 16


def folder(block: str) -> str:
    return 'mca' if block.startswith('mca') else block


def trained_classifier(block: str, path: str) -> dict:
    """Build the block's ImageNet classifier, fill it with random values, save it like a
    training run would (``state_dict`` under ``'state_dict'``) and return its backbone."""
    from mmpretrain.registry import MODELS
    cfg = Config.fromfile(mmsase.config_path(f'{folder(block)}/resnet50_{block}_in1k.py'))
    narrow(cfg.model.backbone)
    cfg.model.head.in_channels = 512
    init_default_scope('mmpretrain')
    classifier = MODELS.build(cfg.model)
    generator = torch.Generator().manual_seed(0)
    state = {k: (torch.randn(v.shape, generator=generator) if v.is_floating_point() else v)
             for k, v in classifier.state_dict().items()}
    torch.save({'meta': {}, 'state_dict': state}, path)
    return {k[len('backbone.'):]: v for k, v in state.items() if k.startswith('backbone.')}


@pytest.mark.parametrize('block', BLOCKS)
def test_imagenet_checkpoint_initialises_the_detector_of_the_same_row(block, tmp_path):
    from mmdet.registry import MODELS
    checkpoint = str(tmp_path / f'resnet50_{block}_in1k.pth')
    trained = trained_classifier(block, checkpoint)
    cfg = Config.fromfile(mmsase.config_path(f'{folder(block)}/faster_rcnn_r50_{block}_1x_coco.py'))
    narrow(cfg.model.backbone)
    cfg.model.neck.in_channels = [64, 128, 256, 512]
    assert cfg.model.backbone.init_cfg.type == 'Pretrained'
    cfg.model.backbone.init_cfg.checkpoint = checkpoint
    init_default_scope('mmdet')
    detector = MODELS.build(cfg.model)
    detector.init_weights()
    loaded = detector.backbone.state_dict()
    assert set(loaded) == set(trained)  # no missing and no unexpected key
    from mmsase.models.backbones import AttentionResNet
    plain_keys = set(AttentionResNet(50, stem_channels=16, base_channels=16).state_dict())
    assert set(trained) - plain_keys  # the attention's own tensors are among those loaded
    for key, value in trained.items():
        assert torch.equal(loaded[key], value), key
