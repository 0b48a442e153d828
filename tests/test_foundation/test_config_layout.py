"""``configs/`` is laid out as OpenMMLab's: one folder per method with a README.md and a
metafile.yml that lists its configs, all imported by ``model-index.yml``; the configs load, and
each detector starts from the ImageNet checkpoint of its folder's classification config, with
the same attention block."""
import functools
import glob
import os
import os.path as osp
import re

import pytest
import yaml
from mmengine.config import Config

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = osp.join(ROOT, 'configs')
NO_METAFILE = {'_base_', 'demo', 'sase_search', 'autola_search'}  # bases, demos, the searches
NO_README = {'_base_', 'demo'}
FOLDERS = sorted(d for d in os.listdir(CONFIGS)
                 if osp.isdir(osp.join(CONFIGS, d)) and d != '__pycache__')
METHOD_FOLDERS = [d for d in FOLDERS if d not in NO_METAFILE]
ALL_CONFIGS = sorted(glob.glob(osp.join(CONFIGS, '**', '*.py'), recursive=True))
METHOD_CONFIGS = [p for p in ALL_CONFIGS if osp.basename(osp.dirname(p)) in METHOD_FOLDERS]
DETECTORS = [p for p in METHOD_CONFIGS if osp.basename(p).endswith('_coco.py')]


@functools.lru_cache(maxsize=None)
def load(path: str) -> Config:
    """A config, loaded once for all the tests here (they only read it)."""
    return Config.fromfile(path)


def metafile(folder: str) -> dict:
    with open(osp.join(CONFIGS, folder, 'metafile.yml'), encoding='utf-8') as f:
        return yaml.safe_load(f)


def test_every_method_folder_has_readme_and_metafile():
    assert {'resnet', 'sase', 'se', 'cbam', 'eca', 'srm', 'gsop', 'gct', 'mca', 'eanorm',
            'sge', 'iebn'} <= set(METHOD_FOLDERS)
    for folder in FOLDERS:
        if folder not in NO_README:
            assert osp.isfile(osp.join(CONFIGS, folder, 'README.md')), folder
        if folder not in NO_METAFILE:
            assert osp.isfile(osp.join(CONFIGS, folder, 'metafile.yml')), folder


@pytest.mark.parametrize('folder', METHOD_FOLDERS)
def test_metafile_lists_exactly_the_folders_configs(folder):
    meta = metafile(folder)
    collections = {c['Name'] for c in meta['Collections']}
    for collection in meta['Collections']:
        assert osp.isfile(osp.join(ROOT, collection['README'])), collection['README']
        assert collection['Paper']['URL'].startswith('http')
        assert osp.isfile(osp.join(ROOT, collection['Code']['URL']))
    listed = set()
    for model in meta['Models']:
        config = model['Config']
        assert osp.isfile(osp.join(ROOT, config)), config
        assert osp.dirname(config) == f'configs/{folder}'
        assert model['Name'] == osp.splitext(osp.basename(config))[0]
        assert model['In Collection'] in collections
        for result in model.get('Results', []):
            assert result['Task'] in ('Image Classification', 'Object Detection',
                                      'Instance Segmentation')
            assert all(0 < value < 100 for value in result['Metrics'].values())
        listed.add(osp.basename(config))
    on_disk = {osp.basename(p) for p in glob.glob(osp.join(CONFIGS, folder, '*.py'))}
    assert listed == on_disk
    # the folder's README names every config and leaves the parameter counts to be filled
    with open(osp.join(CONFIGS, folder, 'README.md'), encoding='utf-8') as f:
        readme = f.read()
    assert all(f'({name})' in readme for name in on_disk)


def test_model_index_imports_every_metafile():
    with open(osp.join(ROOT, 'model-index.yml'), encoding='utf-8') as f:
        imports = yaml.safe_load(f)['Import']
    assert sorted(imports) == sorted(f'configs/{d}/metafile.yml' for d in METHOD_FOLDERS)
    for path in imports:
        assert osp.isfile(osp.join(ROOT, path)), path
    # model names are unique across the index (mim addresses models by name)
    names = [m['Name'] for d in METHOD_FOLDERS for m in metafile(d)['Models']]
    assert len(names) == len(set(names))


@pytest.mark.parametrize('path', ALL_CONFIGS, ids=lambda p: osp.relpath(p, CONFIGS))
def test_config_loads(path):
    cfg = load(path)
    assert 'model' in cfg or osp.basename(osp.dirname(path)) == '_base_'


@pytest.mark.parametrize('path', DETECTORS, ids=lambda p: osp.relpath(p, CONFIGS))
def test_detector_starts_from_its_imagenet_config(path):
    """``faster_rcnn_r50_<tag>_1x_coco.py`` loads ``work_dirs/resnet50_<tag>_in1k/...``, made by
    ``resnet50_<tag>_in1k.py`` in the same folder, and has the same backbone apart from the
    detection keys (GSoP-Net1's stage-4 stride 1 is ImageNet's only)."""
    match = re.fullmatch(r'(faster|mask)_rcnn_r(\d+)(?:_(\w+))?_1x_coco\.py', osp.basename(path))
    assert match, 'detection configs are named {faster,mask}_rcnn_r<depth>[_<tag>]_1x_coco.py'
    depth, tag = match.group(2), match.group(3)
    imagenet_name = f'resnet{depth}_{tag}_in1k' if tag else f'resnet{depth}_in1k'
    imagenet_path = osp.join(osp.dirname(path), imagenet_name + '.py')
    assert osp.isfile(imagenet_path)
    det_cfg, cls_cfg = load(path), load(imagenet_path)
    det, cls = det_cfg.model.backbone, cls_cfg.model.backbone
    assert det.type == cls.type == 'mmsase.AttentionResNet'
    assert det.init_cfg.type == 'Pretrained' and det.init_cfg.prefix == 'backbone.'
    # the checkpoint of the classifier's last epoch (100; EAN's retraining: 120)
    last_epoch = cls_cfg.train_cfg.max_epochs
    assert det.init_cfg.checkpoint == f'work_dirs/{imagenet_name}/epoch_{last_epoch}.pth'
    assert det.depth == cls.depth == int(depth)
    assert det.get('attention') == cls.get('attention')
    assert det.get('connection_code') == cls.get('connection_code')  # EAN's plugged blocks
    assert det.get('attention_shared') == cls.get('attention_shared')
    assert det.get('style', 'pytorch') == cls.get('style', 'pytorch')
    assert det.get('strides', (1, 2, 2, 2)) == (1, 2, 2, 2)  # the FPN needs stride 32
    # the authors' optimiser settings (SRM's and GCT's weight decay) carry over
    assert det_cfg.optim_wrapper.get('paramwise_cfg') == cls_cfg.optim_wrapper.get('paramwise_cfg')
    if tag:
        assert det.attention.type.startswith('mmsase.')
    else:
        assert det.get('attention') is None


@pytest.mark.parametrize('name,block,expected', [
    ('resnet50_srm_in1k.py', 'srm', {'cfc', 'bn.weight', 'bn.bias'}),
    ('resnet50_gct_in1k.py', 'gct', {'beta'}),
])
def test_authors_weight_decay_exemptions(name, block, expected):
    """SRM's parameters and GCT's β train without weight decay, as their authors' code; every
    other parameter keeps it."""
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS
    cfg = load(osp.join(CONFIGS, block, name))
    init_default_scope('mmpretrain')
    model = MODELS.build(cfg.model)
    names = {id(p): n for n, p in model.named_parameters()}
    groups = build_optim_wrapper(model, cfg.optim_wrapper.copy()).optimizer.param_groups
    no_decay = {names[id(p)] for g in groups if g['weight_decay'] == 0 for p in g['params']}
    block_params = {n for n in names.values() if f'.{block}' in n}
    assert no_decay, 'no parameter is exempt from weight decay'
    assert no_decay == {n for n in block_params
                        if any(n.endswith('.' + suffix) for suffix in expected)}
    assert all(g['weight_decay'] == 1e-4 for g in groups if g['weight_decay'] != 0)
