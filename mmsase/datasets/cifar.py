"""CIFAR-10 and CIFAR-100 with clear errors for missing or malformed data.

``mmsase.CIFAR10`` and ``mmsase.CIFAR100`` (registered in mmsase's ``DATASETS``) take the
arguments of mmpretrain's ``CIFAR10`` / ``CIFAR100`` and give the same samples
(``dict(img=<uint8 (32, 32, 3) RGB>, gt_label=<int>)``), from the official "python
version" files::

    <data_root>/cifar-10-batches-py/               <data_root>/cifar-100-python/
    ├── data_batch_1 ... data_batch_5              ├── train
    ├── test_batch                                 ├── test
    └── batches.meta                               └── meta

Each data file is a pickle of a dict (Python 2 strings, read with ``encoding='latin1'``)
with ``'data'``, uint8 ``(N, 3072)`` (a row is the R, G, B planes of a 32x32 image, each
row-major), and the labels: ``'labels'`` (CIFAR-10), or ``'fine_labels'`` (100 classes) and
``'coarse_labels'`` (20 superclasses) for CIFAR-100. Small sets in this format:
:func:`mmsase.datasets.write_cifar10` / :func:`~mmsase.datasets.write_cifar100`
(``tools/generate_data.py cifar10|cifar100 DATA_ROOT``).

What they add to mmpretrain's classes:

* no implicit download (``download=False`` by default) and a ``verify_md5`` switch, since
  generated files cannot match the official md5 sums;
* :class:`~mmsase.datasets.DatasetNotFoundError` naming the missing folder or files and how
  to provide them;
* :class:`~mmsase.datasets.DatasetFormatError` naming the file and what is wrong with it: md5
  sums differing from the official release, a truncated or otherwise unreadable pickle,
  missing keys, ``'data'`` of the wrong type or shape, labels of the wrong length or out of
  range;
* ``CIFAR100(label_type='coarse')``: the 20 superclasses instead of the 100 classes.

Each file is read once: the checked contents are what is loaded.
"""
import os
import os.path as osp
import pickle
from typing import List, Optional, Sequence

import mmengine.dist as dist
import numpy as np
from mmengine.fileio import LocalBackend, get, get_file_backend, join_path
from mmpretrain.datasets import CIFAR10 as MMPretrainCIFAR10
from mmpretrain.datasets import CIFAR100 as MMPretrainCIFAR100
from mmpretrain.datasets.utils import check_md5, download_and_extract_archive

from mmsase.registry import DATASETS
from .checks import DatasetFormatError, DatasetNotFoundError, _is_local
from .synthetic import CIFAR100_COARSE_CLASSES

__all__ = ['CIFAR10', 'CIFAR100']


def _describe(value) -> str:
    """``value``'s type, with dtype and shape for arrays, for error messages."""
    if isinstance(value, np.ndarray):
        return f'a {value.dtype} array of shape {value.shape}'
    if isinstance(value, (list, tuple)):
        return f'a {type(value).__name__} of {len(value)} items'
    return f'a {type(value).__name__}'


@DATASETS.register_module()
class CIFAR10(MMPretrainCIFAR10):
    """mmpretrain's ``CIFAR10`` with clear errors, no implicit download and a switch for
    the md5 check.

    mmpretrain's ``CIFAR10`` compares the md5 sums of all six batch files with the
    official release before loading; a mismatch (as for generated data) makes it download
    the archive (``download=True``) or fail with "Cannot find CIFAR10 dataset". Its md5 table
    is the class attributes ``train_list`` / ``test_list`` / ``meta`` whose ``None`` entries it
    skips; ``verify_md5=False`` sets them to ``None`` for this instance.

    Loading then checks every file of the split (see :mod:`mmsase.datasets.cifar`) and gives
    the same samples as mmpretrain's class.

    Args:
        data_root (str): Folder holding ``cifar-10-batches-py/``.
        split (str): ``'train'`` or ``'test'``.
        verify_md5 (bool): Compare the files' md5 sums with the official release. Set
            False for data written by :func:`mmsase.datasets.write_cifar10`.
        download (bool): Download the official archive if files are missing. Defaults to
            False (this class raises :class:`DatasetNotFoundError` instead).
        **kwargs: Other arguments of mmpretrain's ``CIFAR10``.
    """

    #: Name of the data set in messages, and the ``tools/generate_data.py`` kind.
    title = 'CIFAR-10'
    generator_kind = 'cifar10'
    #: Key of the labels in the data files.
    label_key = 'labels'

    def __init__(self,
                 data_root: str = '',
                 split: str = 'train',
                 verify_md5: bool = True,
                 download: bool = False,
                 **kwargs):
        self.verify_md5 = verify_md5
        if not verify_md5:
            self.train_list = [[name, None] for name, _ in self.train_list]
            self.test_list = [[name, None] for name, _ in self.test_list]
            self.meta = {**self.meta, 'md5': None}
        super().__init__(data_root=data_root, split=split, download=download, **kwargs)

    # ----------------------------------------------------------------------- loading

    def load_data_list(self) -> List[dict]:
        root = self.data_prefix['root']
        if self.download:
            self._download_if_needed(root)
        if _is_local(root):
            self._check_files(root)
        elif not self._check_integrity():
            raise DatasetNotFoundError(
                f'{self.title} files in {join_path(root, self.base_folder)!r} are missing '
                f'or differ from the official release. {self._how(root)}')

        files = self.train_list if self.split == 'train' else self.test_list
        images, labels = [], []
        for name, _ in files:
            data, file_labels = self._read_data_file(join_path(root, self.base_folder, name))
            images.append(data)
            labels.extend(file_labels)
        images = np.vstack(images).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # to HWC

        if self.CLASSES is None:  # as in mmpretrain: the file's names have the lowest priority
            self._load_meta()
        return [{'img': img, 'gt_label': int(label)} for img, label in zip(images, labels)]

    def _download_if_needed(self, root: str) -> None:
        """mmpretrain's download step: the main process fetches the official archive if a
        file is missing or (``verify_md5``) differs; the others wait."""
        if dist.is_main_process() and not self._check_integrity():
            if not isinstance(get_file_backend(root, enable_singleton=True), LocalBackend):
                raise DatasetNotFoundError(
                    f'The {self.title} files in {root!r} are missing or differ from the '
                    'official release, and download=True only writes to local folders.')
            download_and_extract_archive(self.url, root, filename=self.filename,
                                         md5=self.tgz_md5)
        dist.barrier()

    def _read_data_file(self, path: str):
        """The checked ``'data'`` ``(N, 3072)`` uint8 and labels (length N) of one file."""
        entry = self._unpickle(path)
        problems = []
        data = entry.get('data')
        if 'data' not in entry:
            problems.append(f"it has no key 'data' (keys: {self._keys(entry)})")
        elif not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2
                  and data.shape[1] == 3072):
            problems.append("'data' must be a uint8 array of shape (N, 3072) (a row is the "
                            f'R, G, B planes of a 32x32 image), got {_describe(data)}')
            data = None
        labels = entry.get(self.label_key)
        if self.label_key not in entry:
            problems.append(f'it has no key {self.label_key!r} (keys: {self._keys(entry)})')
        else:
            problems.extend(self._label_problems(labels, None if data is None else len(data)))
        if problems:
            raise DatasetFormatError(f'Invalid {self.title} file {path!r}: '
                                     + '; '.join(problems) + f'. {self._fix_hint()}')
        return data, [int(label) for label in labels]

    def _label_problems(self, labels, num_images: Optional[int]) -> List[str]:
        key = self.label_key
        if not isinstance(labels, (list, tuple, np.ndarray)):
            return [f'{key!r} must be a list of ints, got {_describe(labels)}']
        array = np.asarray(labels)
        if array.ndim != 1 or (array.size and not np.issubdtype(array.dtype, np.integer)):
            return [f'{key!r} must be a flat list of ints, got {_describe(array)}']
        problems = []
        if num_images is not None and len(array) != num_images:
            problems.append(f"{key!r} has {len(array)} labels for {num_images} images")
        num_classes = len(self.CLASSES) if self.CLASSES is not None else None
        if num_classes is not None:
            bad = np.flatnonzero((array < 0) | (array >= num_classes))
            if len(bad):
                problems.append(
                    f'{key!r} has {len(bad)} label(s) outside 0..{num_classes - 1} (the '
                    f'{num_classes} classes), e.g. {int(array[bad[0]])} at index {bad[0]}')
        return problems

    def _unpickle(self, path: str) -> dict:
        """The dict pickled in ``path``, with ``bytes`` keys decoded as latin1."""
        raw = get(path)
        try:
            entry = pickle.loads(raw, encoding='latin1')
        except Exception as e:  # a damaged pickle can raise almost any exception
            raise DatasetFormatError(
                f'{self.title} file {path!r} ({len(raw)} bytes) is not a readable pickle '
                f'(truncated or corrupt?): {type(e).__name__}: {e}. {self._fix_hint()}') \
                from e
        if not isinstance(entry, dict):
            raise DatasetFormatError(f'Invalid {self.title} file {path!r}: it must hold a '
                                     f'pickled dict, got {_describe(entry)}.')
        return {k.decode('latin1') if isinstance(k, bytes) else k: v for k, v in entry.items()}

    def _load_meta(self) -> None:
        """Class names from the meta file (``batches.meta`` or ``meta``), checked."""
        root = self.data_prefix['root']
        path = join_path(root, self.base_folder, self.meta['filename'])
        if _is_local(path) and not osp.isfile(path):
            raise DatasetNotFoundError(
                f'{self.title} meta file {path!r} does not exist and no class names were '
                f'given (metainfo=dict(classes=[...])). {self._how(root)}')
        md5 = self.meta.get('md5')
        if md5 is not None and not check_md5(path, md5):
            raise DatasetFormatError(f'The md5 sum of {path!r} differs from the official '
                                     f'{self.title} release. {self._md5_hint()}')
        entry = self._unpickle(path)
        names = entry.get(self.meta['key'])
        if not (isinstance(names, list) and names and all(
                isinstance(n, (str, bytes)) for n in names)):
            raise DatasetFormatError(
                f'Invalid {self.title} meta file {path!r}: {self.meta["key"]!r} must be a '
                f'list of names, got {_describe(names)} (keys: {self._keys(entry)}).')
        # Assigned, not setdefault as in mmpretrain: metainfo=dict(classes=None) sets the key
        self._metainfo['classes'] = tuple(
            n.decode('latin1') if isinstance(n, bytes) else n for n in names)

    # ----------------------------------------------------------------------- messages

    @staticmethod
    def _keys(entry: dict) -> str:
        return ', '.join(repr(k) for k in list(entry)[:10]) or 'none'

    def _how(self, root: str) -> str:
        return (f'To provide it, either run `python tools/generate_data.py '
                f'{self.generator_kind} {root}` for a small synthetic set (then load it with '
                f'verify_md5=False), or download {self.url} and extract it into {root!r} '
                f'(giving {osp.join(root, self.base_folder)!r}), or pass download=True on a '
                'machine with internet access.')

    def _md5_hint(self) -> str:
        return ('If this is a generated set (tools/generate_data.py), pass verify_md5=False; '
                'otherwise download it again.')

    def _fix_hint(self) -> str:
        return (f'Download {self.filename} again, or write a synthetic set with `python '
                f'tools/generate_data.py {self.generator_kind} DATA_ROOT`.')

    def _check_files(self, root: str) -> None:
        """Raise a clear error if a data file is missing or (``verify_md5``) differs from
        the official release."""
        folder = osp.join(root, self.base_folder)
        entries: Sequence = self.train_list + self.test_list
        missing = [name for name, _ in entries if not osp.isfile(osp.join(folder, name))]
        if missing:
            if not osp.isdir(folder):
                problem = 'does not exist'
                if all(osp.isfile(osp.join(root, name)) for name, _ in entries):
                    parent = osp.dirname(osp.normpath(root))
                    problem += (f'; data_root must be the folder that contains '
                                f'{self.base_folder}/ (here {parent!r}), not that folder')
            else:
                problem = f'lacks {", ".join(missing)}'
            raise DatasetNotFoundError(
                f'{self.title} folder {folder!r} {problem} (working directory '
                f'{os.getcwd()!r}). {self._how(root)}')
        changed = [name for name, md5 in entries
                   if md5 is not None and not check_md5(osp.join(folder, name), md5)]
        if changed:
            raise DatasetFormatError(
                f'The md5 sums of {", ".join(changed)} in {folder!r} differ from the '
                f'official {self.title} release. {self._md5_hint()}')


@DATASETS.register_module()
class CIFAR100(CIFAR10, MMPretrainCIFAR100):
    """mmpretrain's ``CIFAR100`` with the checks of :class:`CIFAR10` and a choice of labels.

    File names, md5 sums, URL and the 100 default class names come from mmpretrain's
    ``CIFAR100`` (it precedes mmpretrain's ``CIFAR10`` in the method resolution order);
    loading and checks from :class:`CIFAR10`.

    Args:
        data_root (str): Folder holding ``cifar-100-python/``.
        split (str): ``'train'`` or ``'test'``.
        label_type (str): ``'fine'`` (default, as mmpretrain): ``gt_label`` is the file's
            ``'fine_labels'``, 100 classes (``'apple'``, ``'aquarium_fish'``, ...);
            ``'coarse'``: its ``'coarse_labels'``, the 20 superclasses
            (``'aquatic_mammals'``, ``'fish'``, ...), whose names are then the default
            ``classes``.
        verify_md5 (bool): Compare the files' md5 sums with the official release. Set
            False for data written by :func:`mmsase.datasets.write_cifar100`.
        download (bool): Download the official archive if files are missing. Defaults to
            False.
        **kwargs: Other arguments of mmpretrain's ``CIFAR100`` (``metainfo``, ``pipeline``,
            ...); ``metainfo=dict(classes=...)`` overrides the class names.
    """

    title = 'CIFAR-100'
    generator_kind = 'cifar100'
    label_key = 'fine_labels'
    LABEL_TYPES = ('fine', 'coarse')

    def __init__(self,
                 data_root: str = '',
                 split: str = 'train',
                 label_type: str = 'fine',
                 metainfo: Optional[dict] = None,
                 **kwargs):
        if label_type not in self.LABEL_TYPES:
            raise ValueError(f'label_type must be one of {self.LABEL_TYPES}, got '
                             f'{label_type!r}')
        self.label_type = label_type
        self.label_key = f'{label_type}_labels'
        if label_type == 'coarse':
            self.meta = {**self.meta, 'key': 'coarse_label_names'}
            metainfo = {'classes': CIFAR100_COARSE_CLASSES, **(metainfo or {})}
        super().__init__(data_root=data_root, split=split, metainfo=metainfo, **kwargs)

    def extra_repr(self) -> List[str]:
        return super().extra_repr() + [f'Label type: \t{self.label_type}']
