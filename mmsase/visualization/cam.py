"""Class activation maps of mmpretrain classifiers, with the maintained ``grad-cam`` package.

The pieces ``tools/visualization/vis_cam.py`` puts together, usable on their own::

    model, cfg = build_classifier('configs/demo/cifar_resnet20_se_digits.py', 'epoch_6.pth')
    sample = prepare_image(model, cfg, 'photo.jpg', image_size=(32, 32))
    result = compute_cam(model, sample.inputs, [get_module(model, default_target_layer(model))])
    rgb = overlay(sample.image, result.cam)

``grad-cam`` (import ``pytorch_grad_cam``) is an optional dependency
(``requirements/optional.txt``); it is imported when a map is computed, so this module
imports without it.
"""
import os
import os.path as osp
from typing import List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn

#: ``--method`` names and the ``pytorch_grad_cam`` classes they select.
CAM_METHODS = {
    'gradcam': 'GradCAM',
    'gradcam++': 'GradCAMPlusPlus',
    'xgradcam': 'XGradCAM',
    'hirescam': 'HiResCAM',
    'layercam': 'LayerCAM',
    'eigencam': 'EigenCAM',
}


class Sample(NamedTuple):
    """One image ready for a classifier."""
    inputs: torch.Tensor  #: ``(1, C, H, W)``, normalised by the model's data preprocessor
    image: np.ndarray  #: ``(H, W, 3)`` float32 RGB in [0, 1]: what the model sees, unnormalised


class CamResult(NamedTuple):
    """A map and the prediction it was computed with."""
    cam: np.ndarray  #: ``(H, W)`` float32 in [0, 1], the input's size
    scores: torch.Tensor  #: ``(num_classes,)`` softmax of the logits
    target_class: int  #: the class the map explains


def _import_grad_cam():
    try:
        import pytorch_grad_cam
    except ImportError as e:
        raise ImportError('Grad-CAM needs the grad-cam package: pip install --no-deps -r '
                          'requirements/optional.txt (grad-cam and ttach)') from e
    return pytorch_grad_cam


def build_classifier(config, checkpoint: Optional[str] = None, device: str = 'cpu',
                     cfg_options: Optional[dict] = None):
    """The classifier of an mmpretrain/mmsase config with ``checkpoint``'s weights, in eval mode.

    ``checkpoint`` is loaded weights-only (:mod:`mmsase.utils.checkpoint`) and must match the
    model exactly; ``None`` keeps the initial weights. Returns ``(model, cfg)``.

    Raises:
        FileNotFoundError: the config or checkpoint does not exist.
        ValueError: the config has no classifier, or the checkpoint does not fit the model.
    """
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmengine.runner import load_checkpoint
    from mmpretrain.registry import MODELS

    from mmsase.utils.checkpoint import CheckpointError, install_checkpoint_safety

    if isinstance(config, (str, os.PathLike)):
        if not osp.isfile(config):
            raise FileNotFoundError(f'config file {os.fspath(config)!r} does not exist')
        cfg = Config.fromfile(config)
    else:
        cfg = config
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if not isinstance(cfg.get('model'), dict) or 'head' not in cfg.model:
        raise ValueError(f'{getattr(cfg, "filename", config)}: not a classifier config '
                         '(its model has no head)')
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    import mmsase.models  # noqa: F401  (registers the blocks and backbones)
    model_cfg = cfg.model.copy()
    if cfg.get('data_preprocessor') is not None:  # as the Runner does: top level fills in
        model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    model = MODELS.build(model_cfg)
    if checkpoint is None:
        from mmengine.logging import MMLogger
        logger = MMLogger.get_current_instance()
        level = logger.level
        logger.setLevel('WARNING')  # init_weights logs one message per parameter
        try:
            model.init_weights()
        finally:
            logger.setLevel(level)
    else:
        install_checkpoint_safety()
        try:
            load_checkpoint(model, checkpoint, map_location='cpu', strict=True,
                            logger='silent')
        except CheckpointError:
            raise
        except RuntimeError as e:  # strict loading: missing, unexpected or misshapen keys
            raise ValueError(f'checkpoint {checkpoint!r} does not fit the model of '
                             f'{getattr(cfg, "filename", config)}: {e}') from e
    return model.to(device).eval(), cfg


def class_names(cfg) -> Optional[Tuple[str, ...]]:
    """The class names of the config's test data set, from its class's ``METAINFO`` or the
    config's ``metainfo`` (nothing is loaded); ``None`` if it names none."""
    from mmpretrain.registry import DATASETS
    dataset = (cfg.get('test_dataloader') or {}).get('dataset') or {}
    classes = (dataset.get('metainfo') or {}).get('classes')
    if classes is None:
        try:
            dataset_cls = DATASETS.get(dataset.get('type', ''))
        except Exception:  # noqa: BLE001 -- an unknown or unimportable type: no names
            dataset_cls = None
        classes = getattr(dataset_cls, 'METAINFO', {}).get('classes')
    return tuple(classes) if classes else None


def inference_pipeline(cfg) -> list:
    """The config's test pipeline without ``LoadImageFromFile`` (images come as arrays)."""
    pipeline = cfg.get('test_pipeline') or \
        ((cfg.get('test_dataloader') or {}).get('dataset') or {}).get('pipeline')
    if pipeline is None:
        raise ValueError(f'{getattr(cfg, "filename", "config")}: no test_pipeline and no '
                         'test_dataloader.dataset.pipeline')
    return [t for t in pipeline
            if str(t.get('type', '')).split('.')[-1] != 'LoadImageFromFile']


def load_image(path: str) -> np.ndarray:
    """``path`` as a BGR uint8 array ``(H, W, 3)`` (mmcv's order, as ``LoadImageFromFile``)."""
    import mmcv
    if not osp.isfile(path):
        raise FileNotFoundError(f'image {path!r} does not exist')
    image = mmcv.imread(path, flag='color', channel_order='bgr')
    if image is None:
        raise ValueError(f'{path!r} is not an image OpenCV can read')
    return image


def prepare_image(model, cfg, image, image_size: Optional[Sequence[int]] = None) -> Sample:
    """Run an image through the config's test pipeline and the model's data preprocessor.

    Args:
        image: a file path, or a BGR uint8 array ``(H, W, 3)``.
        image_size: ``(height, width)`` to resize to before the pipeline (for pipelines
            without a resize, e.g. the digits' 32x32); ``None`` keeps the image's size.
    """
    import mmcv
    from mmengine.dataset import Compose

    array = load_image(image) if isinstance(image, (str, os.PathLike)) else image
    if image_size is not None:
        height, width = image_size
        array = mmcv.imresize(array, (width, height))
    data = Compose(inference_pipeline(cfg))(dict(img=array, img_shape=array.shape[:2],
                                            ori_shape=array.shape[:2]))
    packed = data['inputs']  # (C, H, W) in the loaded (BGR) order
    batch = model.data_preprocessor(
        dict(inputs=[packed], data_samples=[data['data_samples']]), False)
    display = packed.permute(1, 2, 0).numpy()[..., ::-1].astype(np.float32) / 255.0
    return Sample(batch['inputs'], np.ascontiguousarray(display.clip(0, 1)))


def default_target_layer(model: nn.Module) -> str:
    """The last stage of the backbone (``backbone.layer4`` of a ResNet-50,
    ``backbone.layer3`` of a CIFAR ResNet)."""
    backbone = getattr(model, 'backbone', None)
    stages = getattr(backbone, 'res_layers', None)
    if not stages:
        raise ValueError(f'cannot tell the last stage of {type(backbone).__name__} (it has '
                         'no res_layers); give --target-layers, e.g. backbone.layer4')
    return f'backbone.{stages[-1]}'


def get_module(model: nn.Module, path: str) -> nn.Module:
    """The submodule at dotted ``path``; the error lists the children where the path fails.

    Raises:
        ValueError: no such module.
    """
    module = model
    walked = []
    for part in path.split('.'):
        children = dict(module.named_children())
        if part not in children:
            where = '.'.join(walked) or 'the model'
            listed = ', '.join(children) or 'none'
            top = ', '.join(name for name, _ in model.named_children())
            raise ValueError(f'target layer {path!r}: {where} has no module {part!r}; its '
                             f'modules: {listed} (the model\'s top-level modules: {top})')
        module = children[part]
        walked.append(part)
    return module


class _Logits(nn.Module):
    """A classifier as ``inputs -> logits`` (what ``pytorch_grad_cam`` calls)."""

    def __init__(self, classifier: nn.Module):
        super().__init__()
        self.classifier = classifier

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        logits = self.classifier(inputs, mode='tensor')
        return logits[-1] if isinstance(logits, (tuple, list)) else logits


def compute_cam(model: nn.Module,
                inputs: torch.Tensor,
                target_layers: List[nn.Module],
                target_class: Optional[int] = None,
                method: str = 'gradcam') -> CamResult:
    """The class activation map of ``model`` on one image.

    Args:
        inputs: ``(1, C, H, W)``, as :func:`prepare_image` returns.
        target_layers: modules whose activations (and gradients) make the map; several are
            averaged.
        target_class: the class to explain; ``None`` is the predicted one.
        method: a key of :data:`CAM_METHODS`.

    Returns:
        the map at the input's size, min-max scaled to [0, 1] by ``grad-cam`` (all zeros
        when no location speaks for the class).
    """
    if method not in CAM_METHODS:
        raise ValueError(f'unknown CAM method {method!r}; choose from {", ".join(CAM_METHODS)}')
    if inputs.dim() != 4 or inputs.shape[0] != 1:
        raise ValueError(f'expected inputs of shape (1, C, H, W), got {tuple(inputs.shape)}')
    grad_cam = _import_grad_cam()
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    wrapped = _Logits(model).eval()
    with torch.no_grad():
        scores = wrapped(inputs)[0].softmax(-1)
    if target_class is None:
        target_class = int(scores.argmax())
    elif not 0 <= target_class < scores.numel():
        raise ValueError(f'target class {target_class} out of range: the model has '
                         f'{scores.numel()} classes (0..{scores.numel() - 1})')
    cam_class = getattr(grad_cam, CAM_METHODS[method])
    with cam_class(model=wrapped, target_layers=list(target_layers)) as cam:
        maps = cam(input_tensor=inputs, targets=[ClassifierOutputTarget(target_class)])
    cam_map = np.nan_to_num(maps[0].astype(np.float32), nan=0.0).clip(0.0, 1.0)
    return CamResult(cam_map, scores.detach().cpu(), target_class)


def overlay(image: np.ndarray, cam: np.ndarray, image_weight: float = 0.5) -> np.ndarray:
    """The map as a jet heat map over ``image`` (RGB float in [0, 1]); RGB uint8."""
    from pytorch_grad_cam.utils.image import show_cam_on_image
    if image.shape[:2] != cam.shape:
        raise ValueError(f'image {image.shape[:2]} and map {cam.shape} differ in size')
    return show_cam_on_image(image, cam, use_rgb=True, image_weight=image_weight)
