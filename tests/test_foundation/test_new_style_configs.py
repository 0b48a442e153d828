"""The new-style (lazy-import) configs in ``mmsase/configs`` and their old-style twins in
``configs/`` resolve to the same settings and build the same models, so the twins cannot
drift apart silently. Nothing is trained here."""
import glob
import os.path as osp
from collections import Counter

import mmcv.ops
import mmengine.registry.root
import pytest
from mmengine.config import Config
from mmengine.config.lazy import LazyAttr, LazyObject
from mmengine.registry import MODELS, Registry

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TWINS = {  # old-style config: its new-style twin
    'configs/demo/cifar_resnet20_sase_digits.py':
    'mmsase/configs/cifar_resnet20_sase_digits_lazy.py',
    'configs/sase/resnet50_sase_in1k.py': 'mmsase/configs/resnet50_sase_in1k_lazy.py',
    'configs/sase/faster_rcnn_r50_sase_1x_coco.py':
    'mmsase/configs/faster_rcnn_r50_sase_1x_coco_lazy.py',
}
# Lazy-import configs ignore `custom_imports`: the classes they name are imported when built.
OLD_STYLE_ONLY_KEYS = {'custom_imports'}
TYPE_KEYS = {'type', 'dataset_type'}
ROOT_REGISTRIES = [r for r in vars(mmengine.registry.root).values() if isinstance(r, Registry)]

twins = pytest.mark.parametrize('old_path,new_path', list(TWINS.items()),
                                ids=[osp.basename(p) for p in TWINS])


def load(path: str) -> Config:
    return Config.fromfile(osp.join(ROOT, path))


def resolve(name: str, scope):
    """What the type string ``name`` builds in ``scope``: the class or function that
    exactly one registry holds under that name, else ``name`` itself."""
    found = set()
    for registry in ROOT_REGISTRIES:
        with registry.switch_scope_and_registry(scope) as scoped:
            obj = scoped.get(name)
        if obj is not None:
            found.add(obj)
    if len(found) == 1:
        return found.pop()
    # mmcv's batched_nms evaluates nms=dict(type='nms') in mmcv.ops; no registry has it
    return getattr(mmcv.ops, name, name) if not found else name


def canonical(value, key=None, scope=None):
    """``value`` as plain data: dicts, lists and built objects, with every type string
    replaced by what it builds and the ``_scope_`` keys of old-style configs dropped."""
    if isinstance(value, (LazyObject, LazyAttr)):
        value = value.build()
    if isinstance(value, dict):
        scope = value.get('_scope_', scope)
        # ConfigDict.items() builds the lazy objects of a new-style config
        return {k: canonical(v, k, scope) for k, v in value.items() if k != '_scope_'}
    if isinstance(value, (list, tuple)):
        return [canonical(v, key, scope) for v in value]
    if key in TYPE_KEYS and isinstance(value, str):
        return resolve(value, scope)
    return value


def settings(cfg: Config) -> dict:
    """Every setting of ``cfg`` (not the names a new-style config imports) in canonical form."""
    keys = set(cfg.to_dict()) - OLD_STYLE_ONLY_KEYS
    return {key: canonical(cfg[key], key, cfg.get('default_scope')) for key in sorted(keys)}


def differences(old, new, path='') -> list:
    """Where two canonical settings trees differ, as ``'path: old != new'`` lines."""
    if isinstance(old, dict) and isinstance(new, dict):
        lines = []
        for key in sorted(set(old) | set(new)):
            where = f'{path}.{key}' if path else key
            if key not in new:
                lines.append(f'{where}: only in the old-style config')
            elif key not in old:
                lines.append(f'{where}: only in the new-style config')
            else:
                lines += differences(old[key], new[key], where)
        return lines
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [line for i, (a, b) in enumerate(zip(old, new))
                for line in differences(a, b, f'{path}[{i}]')]
    if type(old) is type(new) and old == new:
        return []
    return [f'{path}: {old!r} != {new!r}']


def build_model(cfg: Config):
    """The model as the Runner builds it (the top-level data_preprocessor merged in)."""
    model_cfg = cfg.model
    if cfg.get('data_preprocessor') is not None:
        model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    with MODELS.switch_scope_and_registry(cfg.get('default_scope')) as registry:
        return registry.build(model_cfg)


@twins
def test_twins_resolve_to_the_same_settings(old_path, new_path):
    old, new = settings(load(old_path)), settings(load(new_path))
    diff = differences(old, new)
    assert not diff, f'{new_path} drifted from {old_path}:\n' + '\n'.join(diff)
    # the comparison covered what the runner is driven by
    for key in ('model', 'optim_wrapper', 'param_scheduler', 'train_cfg',
                'train_dataloader', 'val_dataloader', 'test_dataloader', 'default_hooks'):
        assert key in old, key


@twins
def test_twins_build_the_same_model(old_path, new_path):
    old, new = build_model(load(old_path)), build_model(load(new_path))
    old_state, new_state = old.state_dict(), new.state_dict()
    assert {k: v.shape for k, v in old_state.items()} == \
        {k: v.shape for k, v in new_state.items()}
    assert sum(p.numel() for p in old.parameters()) == \
        sum(p.numel() for p in new.parameters())
    assert [(name, type(m)) for name, m in old.named_modules()] == \
        [(name, type(m)) for name, m in new.named_modules()]
    assert any('.sase.' in k for k in new_state)


def test_comparison_sees_a_changed_value_or_class():
    """The comparison is not vacuous: a changed number or a same-named class of another
    library (mmcv's RandomFlip is not mmdet's: it leaves the boxes alone) is a difference."""
    old_path = 'configs/sase/faster_rcnn_r50_sase_1x_coco.py'
    old = settings(load(old_path))
    new = load(TWINS[old_path])
    new.optim_wrapper.optimizer.lr = 0.02
    new.train_pipeline[3].type = 'mmcv.RandomFlip'
    diff = differences(old, settings(new))
    assert diff == ['optim_wrapper.optimizer.lr: 0.01 != 0.02',
                    "train_pipeline[3].type: <class 'mmdet.datasets.transforms.transforms."
                    "RandomFlip'> != <class 'mmcv.transforms.processing.RandomFlip'>"]


def test_every_new_style_config_has_a_twin():
    configs = glob.glob(osp.join(ROOT, 'mmsase/configs/*.py'))
    names = {osp.relpath(p, ROOT) for p in configs if not p.endswith('__init__.py')}
    assert names == set(TWINS.values())


def test_config_names_are_unique_for_mim():
    """``mim train mmsase NAME.py`` looks NAME.py up anywhere in the installed package (its
    ``.mim/configs`` and the modules) and refuses a name found twice."""
    shipped = glob.glob(osp.join(ROOT, 'configs/**/*.py'), recursive=True)
    modules = glob.glob(osp.join(ROOT, 'mmsase/**/*.py'), recursive=True)
    counts = Counter(osp.basename(p) for p in shipped + modules)
    config_names = {osp.basename(p) for p in shipped}
    clashes = sorted(osp.relpath(p, ROOT) for p in shipped + modules
                     if osp.basename(p) in config_names and counts[osp.basename(p)] > 1)
    assert not clashes
