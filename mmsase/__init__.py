"""mmsase: Searching Architecture for Squeeze-and-Excitation operations, on OpenMMLab.

Importing the package is cheap (no torch); the models, datasets and engine parts register
themselves when :func:`mmsase.utils.register_all_modules` runs or when a config names
``custom_imports=dict(imports=['mmsase'])`` / a type with the ``mmsase.`` prefix.
"""
from .version import __version__, version_info

__all__ = ['__version__', 'version_info', 'config_path']


def config_path(name: str) -> str:
    """Absolute path of a config shipped with mmsase.

    Lets an old-style config of another project inherit one of ours::

        _base_ = [__import__('mmsase').config_path('faster_rcnn_r50_sase_1x_coco.py')]
    """
    import os.path as osp
    here = osp.dirname(osp.abspath(__file__))
    candidates = [
        osp.join(here, '.mim', 'configs', name),  # installed with `pip install .`
        osp.join(osp.dirname(here), 'configs', name),  # source checkout / editable
    ]
    for path in candidates:
        if osp.isfile(path):
            return path
    raise FileNotFoundError(
        f'mmsase has no config {name!r}; looked in: {", ".join(candidates)}')
