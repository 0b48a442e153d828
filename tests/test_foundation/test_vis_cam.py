"""Grad-CAM (mmsase.visualization.cam) and tools/visualization/vis_cam.py on the digits'
CIFAR ResNet-20, with random weights saved as checkpoints."""
import importlib.util
import os.path as osp

import numpy as np
import pytest
import torch
from _tools import ROOT, run_tool
from PIL import Image

pytest.importorskip('pytorch_grad_cam')

PLAIN = osp.join(ROOT, 'configs/demo/cifar_resnet20_digits.py')
SE = osp.join(ROOT, 'configs/demo/cifar_resnet20_se_digits.py')
SASE = osp.join(ROOT, 'configs/demo/cifar_resnet20_sase_digits.py')


def load_tool():
    spec = importlib.util.spec_from_file_location(
        'vis_cam', osp.join(ROOT, 'tools/visualization/vis_cam.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def files(tmp_path_factory):
    """Two checkpoints (plain, SE) and two images: a photograph, a digit."""
    import cv2
    from sklearn.datasets import load_sample_images

    from mmsase.datasets.synthetic import load_digits_32
    from mmsase.visualization.cam import build_classifier
    root = tmp_path_factory.mktemp('vis_cam')
    torch.manual_seed(0)
    paths = {}
    for name, config in (('plain', PLAIN), ('se', SE)):
        model, _ = build_classifier(config)
        paths[name] = str(root / f'{name}.pth')
        torch.save({'state_dict': model.state_dict(), 'meta': {}}, paths[name])
    photo = load_sample_images().images[0]  # the temple, 427 x 640 RGB
    paths['photo'] = str(root / 'china.jpg')
    cv2.imwrite(paths['photo'], cv2.resize(photo, (160, 107))[..., ::-1])
    digits, _ = load_digits_32()
    paths['digit'] = str(root / 'digit.png')
    cv2.imwrite(paths['digit'], digits[0][..., ::-1])
    return paths


def test_map_has_the_image_size_lies_in_0_1_and_follows_the_class(files):
    from mmsase.visualization.cam import (build_classifier, compute_cam,
                                          default_target_layer, get_module, overlay,
                                          prepare_image)
    model, cfg = build_classifier(PLAIN, files['plain'])
    # the config's top-level data_preprocessor (mean 8, std 40), as the Runner builds it
    assert model.data_preprocessor.mean.flatten().tolist() == [8.0] * 3
    assert default_target_layer(model) == 'backbone.layer3'
    layer = get_module(model, 'backbone.layer3')
    sample = prepare_image(model, cfg, files['photo'], image_size=(40, 48))
    assert sample.inputs.shape == (1, 3, 40, 48) and sample.image.shape == (40, 48, 3)
    maps = []
    for target in range(4):
        result = compute_cam(model, sample.inputs, [layer], target_class=target)
        assert result.cam.shape == (40, 48) and result.target_class == target
        assert np.isfinite(result.cam).all()
        assert result.cam.min() >= 0 and result.cam.max() <= 1
        assert result.scores.shape == (10, )
        maps.append(result.cam)
    assert any(not np.allclose(maps[0], other, atol=1e-3) for other in maps[1:])
    predicted = compute_cam(model, sample.inputs, [layer])
    assert predicted.target_class == int(predicted.scores.argmax())
    assert overlay(sample.image, predicted.cam).shape == (40, 48, 3)
    with pytest.raises(ValueError, match='out of range'):
        compute_cam(model, sample.inputs, [layer], target_class=10)


def test_tool_draws_two_models_side_by_side(files, tmp_path):
    out = str(tmp_path / 'cam.png')
    result = run_tool('tools/visualization/vis_cam.py', PLAIN, files['plain'], files['photo'],
                      files['digit'], '--model', SE, files['se'], '--names', 'plain', 'SE',
                      '--image-size', '32', '--out', out, threads=1)
    assert 'written to' in result.stdout
    tool = load_tool()
    with Image.open(out) as image:  # rows: 2 images; columns: the image, then 2 models
        assert image.format == 'PNG'
        assert image.size == (round(3 * tool.CELL_INCHES * tool.DPI),
                              round(2 * tool.CELL_INCHES * tool.DPI))


def test_bad_target_layer_names_the_modules(files, tmp_path):
    tool = load_tool()
    with pytest.raises(ValueError) as error:
        tool.main([PLAIN, files['plain'], files['digit'], '--target-layers',
                   'backbone.layer4', '--out', str(tmp_path / 'cam.png')])
    message = str(error.value)
    assert "'backbone.layer4'" in message and 'layer1, layer2, layer3' in message
    assert 'data_preprocessor, backbone, neck, head' in message
    assert not osp.exists(tmp_path / 'cam.png')
    with pytest.raises(ValueError, match='--names gives 1 names for 2 models'):
        tool.main([PLAIN, files['plain'], files['digit'], '--model', SE, files['se'],
                   '--names', 'one'])


def test_genotype_goes_to_the_models_with_sase_blocks(files, tmp_path):
    from mmengine.config import Config
    tool = load_tool()
    assert tool.has_sase_block(Config.fromfile(SASE).model)
    assert not tool.has_sase_block(Config.fromfile(SE).model)
    bad = tmp_path / 'genotype.json'
    bad.write_text('{"cs": "gap"}')
    with pytest.raises(ValueError, match='missing edge'):
        tool.main([PLAIN, 'unused.pth', files['digit'], '--genotype', str(bad)])
