"""mmsase: Searching Architecture for Squeeze-and-Excitation operations, on OpenMMLab.

Importing the package is cheap (no torch); the models, datasets and engine parts register
themselves when :func:`mmsase.utils.register_all_modules` runs or when a config names
``custom_imports=dict(imports=['mmsase'])`` / a type with the ``mmsase.`` prefix.
"""
from .version import __version__, version_info

__all__ = ['__version__', 'version_info', 'config_path', 'resolve_config']


def _config_roots() -> list:
    """Where shipped configs live: the installed package's ``mmsase/.mim/configs`` (``pip
    install .``), then the source tree's ``configs/`` (a checkout or an editable install)."""
    import os.path as osp
    here = osp.dirname(osp.abspath(__file__))
    return [osp.join(here, '.mim', 'configs'), osp.join(osp.dirname(here), 'configs')]


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
    return _find_config(name, _config_roots())


def resolve_config(path: str) -> str:
    """The config file that ``tools/train.py`` / ``tools/test.py`` load for ``path``.

    A path that exists is returned unchanged: an existing file always wins. Any other path
    is read as naming a shipped config -- first the part after its last ``configs/``
    directory, then its file name alone -- and found as :func:`config_path` finds it
    (returned as a real path). So the flat paths of the configs from before the per-method
    folders still work::

        resolve_config('configs/faster_rcnn_r50_sase_1x_coco.py')
        # -> /.../configs/sase/faster_rcnn_r50_sase_1x_coco.py

    A path that is neither raises ``FileNotFoundError`` with a one-line message that lists
    the shipped config file names closest to its file name.
    """
    return _resolve_config(path, _config_roots())


def _resolve_config(path: str, roots: list) -> str:
    """:func:`resolve_config` with the config roots given."""
    import difflib
    import os.path as osp
    if osp.exists(path):  # a folder too: Config.fromfile says what is wrong with it
        return path
    parts = [p for p in path.replace('\\', '/').split('/') if p not in ('', '.')]
    if not parts:
        raise FileNotFoundError(f'no config file {path!r}')
    candidates = []
    inside = [i for i, part in enumerate(parts[:-1]) if part == 'configs']
    if inside:  # configs/sase/x.py, /elsewhere/configs/x.py: relative to configs/
        candidates.append('/'.join(parts[inside[-1] + 1:]))
    candidates.append(parts[-1])  # its file name, in whichever folder holds it
    for name in dict.fromkeys(candidates):
        found, _ = _search_config(name, roots, shown=name)
        if found is not None:
            return osp.realpath(found)
    name = parts[-1]
    close = difflib.get_close_matches(name, sorted(_shipped_config_names(roots)), n=5,
                                      cutoff=0.6)
    where = ', '.join(r for r in dict.fromkeys(osp.realpath(r) for r in roots)
                      if osp.isdir(r)) or 'nowhere (no configs folder found)'
    hint = (f'close names: {", ".join(close)}' if close else
            'no shipped config name is close to it')
    raise FileNotFoundError(f'config {path!r} does not exist, and mmsase ships no config '
                            f'named {name!r} (searched {where}); {hint}')


def _shipped_config_names(roots: list) -> set:
    """The file names of the ``.py`` configs under ``roots``."""
    import os
    names = set()
    for root in roots:
        for _, dirs, files in os.walk(root):
            dirs[:] = [d for d in dirs if d != '__pycache__']
            names.update(f for f in files if f.endswith('.py') and f != '__init__.py')
    return names


def _search_config(rel: str, roots: list, shown: str) -> tuple:
    """``(path or None, where it looked)`` for ``rel`` (a file name, or a path relative to
    a root) in the first of ``roots`` that has it. A file name found twice in one root
    raises ``FileNotFoundError`` naming ``shown`` and both places."""
    import os
    import os.path as osp
    looked = []
    for root in roots:
        if not osp.isdir(root):
            looked.append(f'{root} (absent)')
            continue
        if '/' in rel:
            looked.append(osp.join(root, rel))
            path = osp.join(root, *rel.split('/'))
            if osp.isfile(path):
                return path, looked
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
                f'mmsase has {len(found)} configs named {shown!r} in {root}: {listed}; '
                'pass the path relative to configs/ instead')
        if found:
            return found[0], looked
    return None, looked


def _find_config(name: str, roots: list) -> str:
    """``name`` (a file name or a path relative to a root) in the first of ``roots`` that
    has it; see :func:`config_path`."""
    rel = name.replace('\\', '/')
    if rel.startswith('configs/'):  # a path from the repository root
        rel = rel[len('configs/'):]
    path, looked = _search_config(rel, roots, shown=name)
    if path is None:
        raise FileNotFoundError(
            f'mmsase has no config {name!r}; looked in: {"; ".join(looked)}')
    return path
