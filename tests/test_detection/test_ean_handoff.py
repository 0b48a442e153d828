"""EAN ImageNet → COCO: the checkpoint of configs/ean/resnet50_ean_sge_in1k.py (one SGE per stage,
``backbone.shared_attention.<stage>.*``) initialises faster_rcnn_r50_ean_sge_1x_coco.py's backbone
completely, and the detector plugs the same blocks; ``--connection-code`` gives both the same
other code. Narrowed to a quarter of ResNet-50's width as test_zoo_handoff.py."""
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

import mmsase
from mmsase.models.ean import ConnectionCode
from mmsase.utils.launch import set_connection_code

DIA_CODE = 'ean/codes/resnet50_dia_authors.json'


def narrow(backbone_cfg) -> None:
    backbone_cfg.stem_channels = 16
    backbone_cfg.base_channels = 16


@pytest.mark.parametrize('code_file', [None, DIA_CODE])
def test_imagenet_checkpoint_initialises_the_detector_with_the_same_code(code_file, tmp_path):
    from mmdet.registry import MODELS as DET_MODELS
    from mmpretrain.registry import MODELS as CLS_MODELS
    cls_cfg = Config.fromfile(mmsase.config_path('ean/resnet50_ean_sge_in1k.py'))
    det_cfg = Config.fromfile(mmsase.config_path('ean/faster_rcnn_r50_ean_sge_1x_coco.py'))
    if code_file is not None:
        for cfg in (cls_cfg, det_cfg):
            set_connection_code(cfg, mmsase.config_path(code_file))
    narrow(cls_cfg.model.backbone)
    cls_cfg.model.head.in_channels = 512
    init_default_scope('mmpretrain')
    classifier = CLS_MODELS.build(cls_cfg.model)
    generator = torch.Generator().manual_seed(0)
    state = {k: (torch.randn(v.shape, generator=generator) if v.is_floating_point() else v)
             for k, v in classifier.state_dict().items()}
    checkpoint = str(tmp_path / 'resnet50_ean_sge_in1k.pth')
    torch.save({'meta': {}, 'state_dict': state}, checkpoint)
    trained = {k[len('backbone.'):]: v for k, v in state.items() if k.startswith('backbone.')}
    assert {k for k in trained if 'shared_attention' in k} == {
        f'shared_attention.{s}.{p}' for s in range(4) for p in ('weight', 'bias')}

    narrow(det_cfg.model.backbone)
    det_cfg.model.neck.in_channels = [64, 128, 256, 512]
    det_cfg.model.backbone.init_cfg.checkpoint = checkpoint
    init_default_scope('mmdet')
    detector = DET_MODELS.build(det_cfg.model)
    detector.init_weights()
    loaded = detector.backbone.state_dict()
    assert set(loaded) == set(trained)
    for key, value in trained.items():
        assert torch.equal(loaded[key], value), key
    expected = (6, 3, 50, 3) if code_file else (4, 11, 19, 3)
    assert detector.backbone.connection_code.integers == expected
    assert classifier.backbone.connection_code == detector.backbone.connection_code
    plugged = [b.attention_plugged for layer in detector.backbone.residual_blocks()
               for b in layer]
    assert tuple(int(p) for p in plugged) == ConnectionCode.parse(
        expected, (3, 4, 6, 3)).flat
    layer3 = detector.backbone.layer3
    assert layer3[1].__dict__['_shared_attention'] is detector.backbone.shared_attention[2]
