"""Parameter counts of the paper's networks, at the paper's printed precision (spec §3)."""
import pytest
from mmengine.config import Config
from mmengine.registry import init_default_scope

import mmsase
import mmsase.models  # noqa: F401


def num_params(module) -> int:
    return sum(p.numel() for p in module.parameters())


def build(config_name: str):
    cfg = Config.fromfile(mmsase.config_path(config_name))
    scope = cfg.default_scope
    init_default_scope(scope)
    if scope == 'mmdet':
        from mmdet.registry import MODELS
        cfg.model.backbone.init_cfg = None
    else:
        from mmpretrain.registry import MODELS
    return MODELS.build(cfg.model)


@pytest.mark.parametrize('config_name, millions, exact', [
    ('resnet50_in1k.py', 25.56, 25_557_032),
    ('resnet50_sase_in1k.py', 28.10, None),
    ('resnet50_se_in1k.py', 28.09, 28_088_024),  # SE-ResNet-50 reference (BASELINES.md)
    ('resnet101_in1k.py', 44.55, 44_549_160),
    ('resnet101_sase_in1k.py', 49.36, None),
])
def test_classifier_params(config_name, millions, exact):
    count = num_params(build(config_name))
    assert round(count / 1e6, 2) == millions, count
    if exact is not None:
        assert count == exact


@pytest.mark.parametrize('config_name, millions', [
    ('faster_rcnn_r50_sase_1x_coco.py', 44.3),
    ('faster_rcnn_r101_sase_1x_coco.py', 65.6),
    ('mask_rcnn_r50_sase_1x_coco.py', 46.9),
    ('mask_rcnn_r101_sase_1x_coco.py', 68.2),
])
def test_detector_params(config_name, millions):
    count = num_params(build(config_name))
    assert round(count / 1e6, 1) == millions, count


def test_sase_adds_exactly_its_blocks_to_resnet50():
    """R50+SASE - R50 = Σ over the 16 bottlenecks of C²/8 + 2C + K (spec §3)."""
    from mmsase.models.plugins import SASE
    plain = num_params(build('resnet50_in1k.py'))
    sase = num_params(build('resnet50_sase_in1k.py'))
    widths = [256] * 3 + [512] * 4 + [1024] * 6 + [2048] * 3
    assert sase - plain == sum(num_params(SASE(c)) for c in widths)
    assert sum(c * c // 8 + 2 * c for c in widths) == 2_545_152
    assert 0 < sase - plain - 2_545_152 < 16 * 64  # only O(1) extras per block


def test_mmdet_plugin_and_mmsase_backbone_have_same_parameters():
    """The detector's backbone (mmdet ResNet + SASE plug-in) and the classifier's
    backbone (mmsase AttentionResNet) have identical parameter names and shapes, so an
    ImageNet checkpoint initialises the detector completely."""
    classifier = build('resnet50_sase_in1k.py')
    detector = build('faster_rcnn_r50_sase_1x_coco.py')
    cls_shapes = {k: v.shape for k, v in classifier.backbone.state_dict().items()}
    det_shapes = {k: v.shape for k, v in detector.backbone.state_dict().items()}
    assert cls_shapes == det_shapes
    assert any('.sase.' in k for k in det_shapes)
