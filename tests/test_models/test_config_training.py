"""Every shipped config trains what it should.

**Every config** (:func:`test_config_trains_exactly_its_unfrozen_parameters`), built as the
Runner builds it, put in train mode and stepped once with the config's own optimizer on small
inputs: exactly the parameters outside the config's frozen stages require a gradient, are in the
optimizer and are reached by the loss's backward pass (attention blocks, EAN's shared modules,
IEBN/GCT parameters included); every one whose gradient is large enough to move it in float32
moves; the frozen ones get no gradient and keep their values and buffers (BN running
statistics), and every BN is in the mode the config asks for.

The expectation is read from the config, not from the model's ``requires_grad`` flags: with
``frozen_stages = k >= 0``, the backbone's stem (conv1, bn1, a stem attention block: every
direct child but the residual stages and EAN's ``shared_attention``) and ``layer1``..``layer{k}``
are frozen, and so is EAN's shared module of those stages (``shared_attention.0``..``k-1``);
everything else trains.

**The zero start** (:func:`test_every_block_learns_from_the_zero_start`): the ResNet-18/50/101
configs start every residual block's last BN weight at 0 (``zero_init_residual``), so a block
placed after it sees zeros in the first step, and its parameters can only get a gradient once
that BN weight has moved (step 2); a gate its authors also start closed (CBAM's spatial BN
weight 0, SRM's ``cfc`` 0, EANorm's ``alpha`` 0) opens one step later (step 3). Each block's
ResNet-50 config (and EAN's shared modules) must give every parameter of the block a non-zero
gradient within three steps. A bias added right before a BN in training mode is the exception:
the BN subtracts the batch mean, so its gradient is zero by construction (SASE's 2→1 fusions,
GSoP's ``conv_for_DR``).
"""
import glob
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.optim import OptimWrapperDict, build_optim_wrapper
from mmengine.registry import init_default_scope
from torch.nn.modules.batchnorm import _BatchNorm

import mmsase.models  # noqa: F401
from _tools import ROOT

#: configs whose model differs from a tested one only in the ResNet's depth and has over 150 M
#: parameters (one optimizer step of each took ~1 min here): the tested twin covers them.
DEPTH_TWINS = {
    'configs/autola/resnet101_autola_in1k.py': 'configs/autola/resnet50_autola_in1k.py',
    'configs/autola/faster_rcnn_r101_autola_1x_coco.py':
        'configs/autola/faster_rcnn_r50_autola_1x_coco.py',
    'configs/autola/mask_rcnn_r101_autola_1x_coco.py':
        'configs/autola/mask_rcnn_r50_autola_1x_coco.py',
}
CONFIGS = sorted(
    osp.relpath(path, ROOT) for path in glob.glob(osp.join(ROOT, 'configs', '**', '*.py'),
                                                  recursive=True)
    if '_base_' not in path and osp.relpath(path, ROOT) not in DEPTH_TWINS)


def build_model(cfg: Config):
    """The model as mmengine's Runner builds it (top-level ``data_preprocessor`` included).

    A detector's backbone starts from its ImageNet checkpoint (``init_cfg=Pretrained``), which
    these tests do not have: it is initialised as a trained network would be instead, with every
    BN weight at 1 (no ``zero_init_residual``, which a checkpoint suppresses too)."""
    init_default_scope(cfg.get('default_scope', 'mmengine'))
    from mmengine.registry import MODELS
    model_cfg = cfg.model.copy()
    if 'train_cfg' in model_cfg and 'rcnn' in model_cfg.train_cfg:  # fewer RoIs: small inputs
        model_cfg.train_cfg.rpn_proposal.update(nms_pre=200, max_per_img=100)
        model_cfg.train_cfg.rcnn.sampler.num = 64
    backbone = model_cfg.get('backbone', {})
    if isinstance(backbone.get('init_cfg'), dict) and backbone.init_cfg.get('type') == 'Pretrained':
        backbone.init_cfg = None
        backbone.zero_init_residual = False
    if cfg.get('data_preprocessor') is not None:
        model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    model = MODELS.build(model_cfg)
    model.init_weights()
    return model


def classifier_batch(num_classes: int, size: int, generator) -> dict:
    from mmpretrain.structures import DataSample
    inputs = [torch.randint(0, 256, (3, size, size), dtype=torch.uint8, generator=generator)
              for _ in range(2)]
    samples = [DataSample().set_gt_label(i % num_classes) for i in range(2)]
    return dict(inputs=inputs, data_samples=samples)


def detector_batch(with_mask: bool, size: int = 128) -> dict:
    from mmdet.structures import DetDataSample
    from mmdet.structures.mask import BitmapMasks
    from mmengine.structures import InstanceData
    inputs, samples = [], []
    for i in range(2):
        image = torch.full((3, size, size), 60, dtype=torch.uint8)
        x0, y0 = 16 + 24 * i, 20
        image[:, y0:y0 + 48, x0:x0 + 40] = 200
        sample = DetDataSample(metainfo=dict(img_shape=(size, size), ori_shape=(size, size),
                                             pad_shape=(size, size), scale_factor=(1., 1.),
                                             flip=False, batch_input_shape=(size, size)))
        gt = InstanceData(bboxes=torch.tensor([[x0, y0, x0 + 40., y0 + 48.]]),
                          labels=torch.tensor([i]))
        if with_mask:
            mask = np.zeros((1, size, size), dtype=np.uint8)
            mask[0, y0:y0 + 48, x0:x0 + 40] = 1
            gt.masks = BitmapMasks(mask, size, size)
        sample.gt_instances = gt
        inputs.append(image)
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def make_batch(cfg: Config, model, generator) -> dict:
    if cfg.get('default_scope') == 'mmdet':
        return detector_batch(with_mask=getattr(model, 'with_mask', False))
    size = 32 if 'Cifar' in type(model.backbone).__name__ else 64
    return classifier_batch(model.head.num_classes, size, generator)


def frozen_names(backbone_cfg: dict, model) -> tuple:
    """Prefixes (in the model's parameter names) of what ``frozen_stages`` freezes."""
    k = backbone_cfg.get('frozen_stages', -1)
    if k < 0:
        return ()
    backbone = model.backbone
    stem = [name for name, _ in backbone.named_children()
            if name not in backbone.res_layers and name != 'shared_attention']
    prefixes = [f'backbone.{name}.' for name in stem]
    prefixes += [f'backbone.layer{i}.' for i in range(1, k + 1)]
    prefixes += [f'backbone.shared_attention.{i}.' for i in range(k)]
    return tuple(prefixes)


def wrappers_of(optim_wrapper) -> list:
    """The optim wrappers of a config (a SASE search has one for the weights, one for α)."""
    return list(optim_wrapper.values()) if isinstance(optim_wrapper, OptimWrapperDict) \
        else [optim_wrapper]


def step(optim_wrapper, loss) -> None:
    wrappers = wrappers_of(optim_wrapper)
    for wrapper in wrappers:
        wrapper.zero_grad()
    loss.backward()
    for wrapper in wrappers:
        wrapper.step()


@pytest.mark.parametrize('config', CONFIGS)
def test_config_trains_exactly_its_unfrozen_parameters(config):
    cfg = Config.fromfile(osp.join(ROOT, config))
    torch.manual_seed(0)
    model = build_model(cfg)
    backbone_cfg = model_backbone_cfg(cfg)
    frozen = frozen_names(backbone_cfg, model_of(model))
    model.train()

    norm_eval = backbone_cfg.get('norm_eval', False)
    for name, module in model_of(model).named_modules():
        if isinstance(module, _BatchNorm) and name.startswith('backbone.'):
            expected = not (name + '.').startswith(frozen) and not norm_eval
            assert module.training == expected, \
                f'{config}: {name} training={module.training}, expected {expected}'

    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    optimized = {id(p): group['lr'] for wrapper in wrappers_of(optim_wrapper)
                 for group in wrapper.optimizer.param_groups for p in group['params']}
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    data = model.data_preprocessor(
        make_batch(cfg, model_of(model), torch.Generator().manual_seed(0)), True)
    loss, _ = model_of(model).parse_losses(model_of(model)(**data, mode='loss'))
    step(optim_wrapper, loss)
    after = model.state_dict()

    prefix = 'classifier.' if model is not model_of(model) else ''

    def is_frozen(name: str) -> bool:  # names inside the classifier or detector
        return name.startswith(prefix) and name[len(prefix):].startswith(frozen)

    for name, param in model.named_parameters():
        if is_frozen(name):
            assert not param.requires_grad and param.grad is None, \
                f'{config}: {name} is in a frozen stage but trains'
            assert torch.equal(before[name], after[name]), f'{config}: frozen {name} changed'
            continue
        assert param.requires_grad, f'{config}: {name} should train but is frozen'
        assert id(param) in optimized, f'{config}: {name} is in no optimizer'
        assert param.grad is not None, f'{config}: {name} is not in the loss\'s graph'
        if param.numel() == 0:  # AutoLA's empty group SE at CIFAR widths (authors' code)
            continue
        if (optimized[id(param)] * param.grad).abs().max() > 1e-5 * (1 + before[name].abs().max()):
            assert not torch.equal(before[name], after[name]), f'{config}: {name} did not move'
    for name, value in before.items():  # BN running statistics of the frozen stages
        if is_frozen(name):
            assert torch.equal(value, after[name]), f'{config}: frozen buffer {name} changed'


#: one ResNet-50 config per block (plus ResNet-18 and EAN's shared modules), and the
#: parameter-name part that marks the block's parameters
ZERO_START = {
    'se/resnet50_se_in1k.py': '.se.', 'se/resnet18_se_in1k.py': '.se.',
    'cbam/resnet50_cbam_in1k.py': '.cbam.', 'cbam/resnet18_cbam_in1k.py': '.cbam.',
    'eca/resnet50_eca_in1k.py': '.eca.', 'srm/resnet50_srm_in1k.py': '.srm.',
    'gsop/resnet50_gsop_in1k.py': '.gsop.', 'gct/resnet50_gct_in1k.py': 'gct',
    'mca/resnet50_mca_in1k.py': '.mca.', 'mca/resnet50_mca_skew_in1k.py': '.mca.',
    'eanorm/resnet50_eanorm_in1k.py': '.eanorm.', 'sge/resnet50_sge_in1k.py': '.sge.',
    'iebn/resnet50_iebn_in1k.py': 'bn', 'sase/resnet50_sase_in1k.py': '.sase.',
    'ean/resnet50_ean_sge_in1k.py': 'shared_attention', 'ean/resnet50_ean_se_in1k.py':
    'shared_attention', 'ean/resnet50_ean_sge_supernet_in1k.py': 'shared_attention',
    'ean/resnet50_ean_dia_in1k.py': 'shared_attention',
    'ean/resnet50_ean_dia_supernet_in1k.py': 'shared_attention',
}


@pytest.mark.parametrize('config', sorted(ZERO_START))
def test_every_block_learns_from_the_zero_start(config):
    cfg = Config.fromfile(osp.join(ROOT, 'configs', config))
    assert cfg.model.backbone.get('zero_init_residual', True)  # mmpretrain's default
    torch.manual_seed(0)
    model = build_model(cfg)
    model.train()
    marker = ZERO_START[config]
    block_params = {n: p for n, p in model.named_parameters() if marker in n}
    assert block_params
    last_bn = 'bn2' if model.backbone.depth == 18 else 'bn3'
    assert all(float(getattr(b, last_bn).weight.abs().max()) == 0
               for layer in model.backbone.res_layers for b in getattr(model.backbone, layer)
               if getattr(b, last_bn).weight.dim() == 1)
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    generator = torch.Generator().manual_seed(0)
    learned = set()
    for _ in range(3):
        data = model.data_preprocessor(make_batch(cfg, model, generator), True)
        loss, _ = model.parse_losses(model(**data, mode='loss'))
        step(optim_wrapper, loss)
        learned |= {n for n, p in block_params.items() if p.grad is not None
                    and bool(p.grad.abs().sum() > 0)}
    silent = sorted(n for n in block_params
                    if n not in learned and not n.endswith(BIAS_BEFORE_TRAIN_BN))
    assert not silent, f'{config}: no gradient in 3 steps from the zero start: {silent[:5]}'


BIAS_BEFORE_TRAIN_BN = ('.fusion.conv.bias', '.fuse.conv.bias', '.conv_for_DR.bias')


def model_of(model):
    """The classifier or detector (a SASE search wraps its classifier; its α,
    ``architecture.alpha``, trains under the search's second optimizer)."""
    return getattr(model, 'classifier', model)


def model_backbone_cfg(cfg: Config) -> dict:
    model = cfg.model
    return (model.get('architecture') or model).get('backbone', {})


def test_depth_twins_are_twins():
    """Each skipped config is its twin with another depth: the same keys but the depth."""
    for config, twin in DEPTH_TWINS.items():
        assert twin in CONFIGS
        cfg, twin_cfg = Config.fromfile(osp.join(ROOT, config)), Config.fromfile(
            osp.join(ROOT, twin))
        assert cfg.model.backbone.depth == 101 and twin_cfg.model.backbone.depth == 50
        model, twin_model = cfg.model.to_dict(), twin_cfg.model.to_dict()
        for m in (model, twin_model):  # the detectors' ImageNet checkpoints differ by name
            m['backbone'].pop('init_cfg', None)
        model['backbone']['depth'] = 50
        assert model == twin_model, config
