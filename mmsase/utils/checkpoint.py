"""Safe, atomic and explicit checkpoint I/O for mmengine 0.10.7 under torch >= 2.6.

* torch >= 2.6 loads with ``weights_only=True`` by default; mmengine 0.10.7 does not pass
  the argument, so its own checkpoints (message hub history buffers, numpy arrays in the
  meta) fail to load. We keep weights-only loading and allow-list the few classes that an
  mmengine checkpoint holds, instead of switching the protection off.
* Local checkpoint files are written atomically. The ``last_checkpoint`` pointer is not
  (mmengine's ``CheckpointHook`` writes it in place), so :func:`latest_checkpoint` does not
  trust it blindly: an empty pointer, or one naming a missing file, falls back to the newest
  checkpoint in the work dir.
* A missing, truncated or corrupt checkpoint, or one holding an object that is not on the
  allow-list, raises :class:`CheckpointError` naming the file, what is wrong with it and what
  to do, instead of a deep ``PytorchStreamReader``/unpickling traceback (and without torch's
  advice to switch weights-only loading off).
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
    """``torch.load`` with weights-only unpickling and errors that name the file.

    A file that cannot be loaded raises :class:`CheckpointError` with one line saying what
    is wrong with it: empty, cut off, not a zip archive or pickle at all, a damaged pickle, or
    holding an object whose type is not on the weights-only allow-list (named when torch
    names it, with how to allow-list it for a trusted checkpoint). The protection is never
    switched off, and the message never suggests switching it off.
    """
    install_checkpoint_safety()
    path = osp.expanduser(filename)
    if not osp.isfile(path):
        raise CheckpointError(
            f'checkpoint file {filename!r} does not exist. Train the config that '
            'produces it (tools/train.py), or correct the path (e.g. '
            '--cfg-options load_from=... / model.backbone.init_cfg.checkpoint=...).')
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 -- a damaged pickle can fail in any way
        refused = _refused_object_message(filename, e)
        raise CheckpointError(refused or _corrupt_message(filename, e)) from e


# What torch's weights-only unpickler says when it refuses an object (torch 2.6 - 2.x), as
# (pattern, group naming the global or type); the rest of torch's text is not passed on: it
# advises switching the protection off.
_REFUSALS = (
    (r'GLOBAL (\S+) was not an allowed global', 1),
    (r'Can only (?:create new object|build)\b.*?but got <class \'([^\']+)\'>', 1),
    (r'call reduce for unrecognized function <(?:built-in )?function (\S+?)[ >]', 1),
    (r'Unsupported class (\S+)', 1),
)
_BLOCKED = r'unsupported GLOBAL (\S+) whose module (\S+) is blocked'


def _unpickler_reason(error: Exception) -> str:
    """The unpickler's own complaint inside torch's wrapped message, without torch's advice:
    the first line that is not about switching weights-only loading off ('' if none)."""
    text = str(error)
    if 'WeightsUnpickler error:' in text:
        text = text.split('WeightsUnpickler error:', 1)[1]
    for line in text.splitlines():
        line = line.strip()
        if (line and 'weights_only' not in line.lower()
                and not line.startswith(('Weights only load failed', 'Check the documentation'))):
            return line.rstrip('.')
    return ''


def _refused_object_message(filename: str, error: Exception) -> Optional[str]:
    """The message for a file that holds an object weights-only loading does not allow, or
    None if ``error`` is not such a refusal."""
    if not isinstance(error, pickle.UnpicklingError):
        return None
    reason = _unpickler_reason(error)
    blocked = re.search(_BLOCKED, reason)
    if blocked:
        return (f'checkpoint {filename!r} asks for {blocked.group(1)}, from a module '
                f'({blocked.group(2)}) that is never allowed while loading weights: it is not '
                'a model checkpoint and may be malicious. It was not loaded and nothing in it '
                'was run; do not use it, re-create it or get it again from its source.')
    for pattern, group in _REFUSALS:
        match = re.search(pattern, reason)
        if match:
            name = match.group(group)
            return (f'checkpoint {filename!r} holds an object of a type that is not on the '
                    f'weights-only allow-list ({name}), so it was not loaded (nothing in it '
                    'was run). If it is a checkpoint you trust (e.g. from an older mmengine or '
                    'another code base), allow-list that type before loading it: import it '
                    f'and call torch.serialization.add_safe_globals([{name}]); or, in a '
                    'script of your own, load it inside torch.serialization.safe_globals('
                    f'[{name}]) and re-save only its weights: '
                    "torch.save({'state_dict': ckpt['state_dict']}, 'clean.pth'). "
                    'Do not load such a file from a source you do not trust.')
    return None


def _corrupt_message(filename: str, error: Exception) -> str:
    """What is wrong with a file torch cannot read, judged from its first bytes and size."""
    path = osp.expanduser(filename)
    size = osp.getsize(path)
    with open(path, 'rb') as f:
        head = f.read(8)
    reason = _unpickler_reason(error) if isinstance(error, pickle.UnpicklingError) else (
        str(error).strip().splitlines() or [''])[0]
    if 'weights_only' in reason.lower():
        reason = ''
    details = f' ({type(error).__name__}: {reason})' if reason else ''
    if size == 0:
        what = 'it is empty (never written, or writing it was cut off)'
    elif head.startswith(b'PK\x03\x04') and not zipfile.is_zipfile(path):
        what = ("it starts as torch.save's zip archive but the archive's end (its "
                'directory) is missing, as when writing or copying it was cut off')
    elif head.startswith(b'PK\x03\x04'):
        what = f'it is a zip archive, but its contents cannot be read{details}'
    elif head.startswith(b'\x80'):
        what = ('it is a pickle that cannot be read: damaged, cut off, or not written by '
                f'torch.save{details}')
    else:
        what = ("it is neither a zip archive (torch.save's format) nor a pickle (it starts "
                f'with {head[:4]!r}): not a checkpoint, or overwritten')
    return (f'checkpoint {filename!r} ({size} bytes) is truncated or corrupt: {what}. '
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
