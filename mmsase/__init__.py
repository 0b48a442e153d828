"""mmsase: Searching Architecture for Squeeze-and-Excitation operations, on OpenMMLab.

Importing the package is cheap (no torch); the models, datasets and engine parts register
themselves when :func:`mmsase.utils.register_all_modules` runs or when a config names
``custom_imports=dict(imports=['mmsase'])`` / a type with the ``mmsase.`` prefix.
"""
from .version import __version__, version_info

__all__ = ['__version__', 'version_info', 'config_path']


def config_path(name: str) -> str:
    """Absolute path of a config shipped with mmsase.

    ``name`` is a file name, found anywhere under ``configs/`` (config file names are unique
    there, as ``mim`` needs), or a path relative to ``configs/``::

        mmsase.config_path('faster_rcnn_r50_sase_1x_coco.py')   # configs/sase/...
        mmsase.config_path('demo/cifar_resnet20_sase_digits.py')

    which lets an old-style config of another project inherit one of ours::

        _base_ = [__import__('mmsase').config_path('faster_rcnn_r50_sase_1x_coco.py')]

    The installed package's ``mmsase/.mim/configs`` is searched first, then the source
    tree's ``configs/``. A file name found twice in one of them is an error that lists
    both, as is a config found nowhere (the error lists where it looked).
    """
    import os.path as osp
    here = osp.dirname(osp.abspath(__file__))
    roots = [
        osp.join(here, '.mim', 'configs'),  # installed with `pip install .`
        osp.join(osp.dirname(here), 'configs'),  # source checkout / editable
    ]
    return _find_config(name, roots)


def _find_config(name: str, roots: list) -> str:
    """``name`` (a file name or a path relative to a root) in the first of ``roots`` that
    has it; see :func:`config_path`."""
    import os
    import os.path as osp
    rel = name.replace('\\', '/')
    if rel.startswith('configs/'):  # a path from the repository root
        rel = rel[len('configs/'):]
    looked = []
    for root in roots:
        if not osp.isdir(root):
            looked.append(f'{root} (absent)')
            continue
        if '/' in rel:
            looked.append(osp.join(root, rel))
            path = osp.join(root, *rel.split('/'))
            if osp.isfile(path):
                return path
            continue
        looked.append(f'{root} and its sub-directories')
        found = []
        for folder, dirs, files in os.walk(root):  # the root itself may be a link
            dirs[:] = sorted(d for d in dirs if d != '__pycache__')
            if rel in files:
                found.append(osp.join(folder, rel))
        if len(found) > 1:
            listed = ', '.join(osp.relpath(p, root) for p in found)
            raise FileNotFoundError(
                f'mmsase has {len(found)} configs named {name!r} in {root}: {listed}; '
                'pass the path relative to configs/ instead')
        if found:
            return found[0]
    raise FileNotFoundError(f'mmsase has no config {name!r}; looked in: {"; ".join(looked)}')
