"""Safe, atomic and explicit checkpoint I/O for mmengine 0.10.7 under torch >= 2.6.

* torch >= 2.6 loads with ``weights_only=True`` by default; mmengine 0.10.7 does not pass
  the argument, so its own checkpoints (message hub history buffers, numpy arrays in the
  meta) fail to load. We keep weights-only loading and allow-list the few classes that an
  mmengine checkpoint holds, instead of switching the protection off.
* Local checkpoint files are written atomically. The ``last_checkpoint`` pointer is not
  (mmengine's ``CheckpointHook`` writes it in place), so :func:`latest_checkpoint` does not
  trust it blindly: an empty pointer, or one naming a missing file, falls back to the newest
  checkpoint in the work dir.
* A missing, truncated or corrupt checkpoint raises :class:`CheckpointError` naming the
  file and what to do, instead of a deep ``PytorchStreamReader``/unpickling traceback.
"""
import codecs
import glob
import logging
import os.path as osp
import pickle
import re
import zipfile
from typing import Optional

import numpy as np
import torch
from mmengine.fileio.backends import LocalBackend, register_backend
from mmengine.runner.checkpoint import CheckpointLoader

from .atomic_io import atomic_write


class CheckpointError(RuntimeError):
    """A checkpoint file cannot be used; the message says which and why."""


def history_buffer_method(owner, name: str):
    """Stand-in for ``getattr`` while unpickling: resolves HistoryBuffer methods only.

    mmengine pickles each ``HistoryBuffer``'s statistics methods as
    ``getattr(HistoryBuffer, 'mean')``. Allowing the real ``getattr`` in weights-only
    loading would let a file read any attribute of any allowed object, so only
    functions defined on ``HistoryBuffer`` itself are given out.
    """
    from mmengine.logging.history_buffer import HistoryBuffer
    value = vars(HistoryBuffer).get(name) if owner is HistoryBuffer else None
    if not callable(value) or name.startswith('__'):
        raise pickle.UnpicklingError(
            f'checkpoint asks for getattr({owner!r}, {name!r}); only HistoryBuffer '
            'statistics methods may be looked up while loading a checkpoint')
    return getattr(HistoryBuffer, name)


def _checkpoint_safe_globals() -> list:
    """Classes an mmengine checkpoint may hold besides tensors and builtins."""
    from mmengine.logging.history_buffer import HistoryBuffer
    numpy_core = getattr(np, '_core', None) or np.core
    safe = [
        HistoryBuffer,
        (history_buffer_method, 'builtins.getattr'),
        np.ndarray,
        np.dtype,
        numpy_core.multiarray._reconstruct,
        numpy_core.multiarray.scalar,
        codecs.encode,  # numpy pickles array bytes as _codecs.encode(str, 'latin1')
    ]
    # numpy >= 1.25 pickles dtypes through their classes (numpy.dtypes.Float64DType, ...).
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:
        safe += [getattr(dtypes, name) for name in dir(dtypes) if name.endswith('DType')]
    return safe


def load_checkpoint_file(filename: str, map_location=None):
    """``torch.load`` with weights-only unpickling and errors that name the file."""
    install_checkpoint_safety()
    path = osp.expanduser(filename)
    if not osp.isfile(path):
        raise CheckpointError(
            f'checkpoint file {filename!r} does not exist. Train the config that '
            'produces it (tools/train.py), or correct the path (e.g. '
            '--cfg-options load_from=... / model.backbone.init_cfg.checkpoint=...).')
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        # A file that is not even a zip archive is damaged, whatever the unpickler says.
        if 'Weights only load failed' in str(e) and zipfile.is_zipfile(path):
            raise CheckpointError(
                f'checkpoint {filename!r} holds objects that weights-only loading does '
                f'not allow. If you trust the file, allow-list the class with '
                f'torch.serialization.add_safe_globals. Details: {e}') from e
        raise CheckpointError(_corrupt_message(filename, e)) from e
    except Exception as e:  # noqa: BLE001 -- a damaged pickle can fail in any way
        raise CheckpointError(_corrupt_message(filename, e)) from e


def _corrupt_message(filename: str, error: Exception) -> str:
    size = osp.getsize(osp.expanduser(filename))
    reason = (str(error).strip().splitlines() or ['no details'])[0]
    return (f'checkpoint {filename!r} ({size} bytes) is truncated or corrupt and cannot '
            f'be read ({type(error).__name__}: {reason}). '
            'Re-create it, or resume from an earlier checkpoint in the same work dir.')


def latest_checkpoint(work_dir: str) -> Optional[str]:
    """The checkpoint to resume from in ``work_dir``, or None if it holds none.

    The one ``last_checkpoint`` names, if that file exists; otherwise (no pointer, an empty
    one, or a stale one) the newest ``epoch_N.pth`` / ``iter_N.pth`` by modification time
    and then by ``N``, with a warning when a pointer was passed over.
    """
    from mmengine.logging import print_log
    pointer = osp.join(work_dir, 'last_checkpoint')
    named = None
    if osp.isfile(pointer):
        with open(pointer) as f:
            named = f.read().strip()
        if named and osp.isfile(named):
            return named
    candidates = []
    for path in glob.glob(osp.join(work_dir, '*.pth')):
        match = re.fullmatch(r'(?:epoch|iter)_(\d+)\.pth', osp.basename(path))
        if match:
            candidates.append((osp.getmtime(path), int(match.group(1)), path))
    newest = max(candidates)[2] if candidates else None
    if named is not None:  # a pointer was there but named nothing usable
        print_log(f'{pointer} names {named!r}, which does not exist; resuming from '
                  f'{newest!r}, the newest checkpoint in {work_dir}', logger='current',
                  level=logging.WARNING)
    return newest


def load_torchvision_offline(filename: str, map_location=None):
    """``torchvision://NAME`` from the local torch hub cache only (no download here)."""
    from mmengine.runner.checkpoint import get_torchvision_models
    name = filename.split('://', 1)[1]
    urls = get_torchvision_models()
    if name not in urls:
        raise CheckpointError(f'{filename!r}: torchvision has no model {name!r}')
    cached = osp.join(torch.hub.get_dir(), 'checkpoints', osp.basename(urls[name]))
    if not osp.isfile(cached):
        raise CheckpointError(
            f'pretrained weights {filename!r} are not available offline: expected '
            f'{cached}. Download {urls[name]} to that path, point init_cfg.checkpoint at '
            'an mmsase ImageNet checkpoint, or train from scratch with '
            '--cfg-options model.backbone.init_cfg=None.')
    return load_checkpoint_file(cached, map_location)


class AtomicLocalBackend(LocalBackend):
    """mmengine's local backend, but files appear atomically (temp file + rename)."""

    def put(self, obj: bytes, filepath) -> None:
        atomic_write(filepath, obj)

    def put_text(self, obj: str, filepath, encoding: str = 'utf-8') -> None:
        atomic_write(filepath, obj, encoding=encoding)


_installed = False


def install_checkpoint_safety() -> None:
    """Install the allow-list, the checked loaders and the atomic backend (idempotent)."""
    global _installed
    if _installed:
        return
    torch.serialization.add_safe_globals(_checkpoint_safe_globals())
    CheckpointLoader.register_scheme(prefixes='', loader=load_checkpoint_file, force=True)
    CheckpointLoader.register_scheme(
        prefixes=('torchvision://', 'modelzoo://'),
        loader=load_torchvision_offline,
        force=True)
    register_backend('local', AtomicLocalBackend, force=True, prefixes='')
    _installed = True
