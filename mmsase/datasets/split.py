"""Deterministic disjoint partitions of a data set.

DARTS-style searches train the network weights on one part of the training set and the
architecture parameters on another::

    train_dataloader = dict(dataset=dict(
        type='mmsase.HalfSplit', part=0, seed=0,
        dataset=dict(type='mmpretrain.CIFAR10', data_root='data/cifar10', split='train')))
    # ... and the architecture loader: the same with part=1
"""
import copy
from typing import List, Union

import numpy as np
from mmengine.dataset import BaseDataset, force_full_init

from mmsase.registry import DATASETS

__all__ = ['SplitDataset', 'split_indices']


def split_indices(num_samples: int, num_parts: int = 2, seed: int = 0) -> List[np.ndarray]:
    """Partition ``range(num_samples)`` into ``num_parts`` disjoint random parts.

    The indices are permuted with ``numpy.random.default_rng(seed)`` and cut into
    ``num_parts`` contiguous chunks of equal size (``numpy.array_split``: when
    ``num_samples`` is not divisible, the first ``num_samples % num_parts`` parts have one
    more index). The parts are disjoint and together cover every index.

    Returns:
        list[np.ndarray]: ``num_parts`` int64 arrays of indices, each in permuted order.
    """
    if num_parts < 1:
        raise ValueError(f'num_parts must be >= 1, got {num_parts}')
    _check_seed(seed)
    order = np.random.default_rng(seed).permutation(num_samples)
    return np.array_split(order, num_parts)


def _check_seed(seed) -> None:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f'seed must be an int (the parts of one split, and a resumed run, '
                         f'must draw the same permutation), got {seed!r}')


@DATASETS.register_module()
@DATASETS.register_module(name='HalfSplit')
class SplitDataset:
    """One part of a deterministic random partition of a data set.

    Registered as ``SplitDataset`` and as ``HalfSplit`` (the two-way split used by DARTS:
    ``part=0`` and ``part=1`` of the same ``seed`` are the two disjoint halves).

    Sample ``i`` of this wrapper is sample ``split_indices(len(dataset), num_parts,
    seed)[part][i]`` of the wrapped data set. When the wrapped data set is an mmengine
    ``BaseDataset`` whose pipeline rejects a training sample (returns ``None``), another
    sample is drawn **from the same part**, so the parts stay disjoint.

    Args:
        dataset (dict | Dataset): The data set to split: a config built with
            ``mmsase.registry.DATASETS`` (use a scope prefix such as ``'mmpretrain.CIFAR10'``
            when no default scope is set) or a built data set (anything with ``__len__``
            and ``__getitem__``; an mmengine ``BaseDataset`` gives ``metainfo`` and
            ``get_data_info``).
        part (int): Which part, ``0 <= part < num_parts``.
        num_parts (int): Number of parts. Defaults to 2.
        seed (int): Seed of the permutation; all parts of one split must use the same seed.
        lazy_init (bool): Defer building the index (and the wrapped data set's
            ``full_init``) until first use. Defaults to False.
    """

    def __init__(self,
                 dataset: Union[dict, BaseDataset],
                 part: int = 0,
                 num_parts: int = 2,
                 seed: int = 0,
                 lazy_init: bool = False):
        if not 0 <= part < num_parts:
            raise ValueError(f'part must be in 0..{num_parts - 1} for num_parts={num_parts}, '
                             f'got {part}')
        _check_seed(seed)  # before the data set is built
        self.dataset = DATASETS.build(dataset) if isinstance(dataset, dict) else dataset
        self.part = part
        self.num_parts = num_parts
        self.seed = seed
        self._metainfo = getattr(self.dataset, 'metainfo', {})
        self._fully_initialized = False
        if not lazy_init:
            self.full_init()

    @property
    def metainfo(self) -> dict:
        """The wrapped data set's meta information (a copy)."""
        return copy.deepcopy(self._metainfo)

    def full_init(self) -> None:
        """Fully initialise the wrapped data set and compute this part's indices."""
        if self._fully_initialized:
            return
        if hasattr(self.dataset, 'full_init'):
            self.dataset.full_init()
        self.indices = split_indices(len(self.dataset), self.num_parts, self.seed)[self.part]
        self._fully_initialized = True

    @force_full_init
    def get_ori_index(self, idx: int) -> int:
        """Index in the wrapped data set of this part's sample ``idx``."""
        return int(self.indices[idx])

    @force_full_init
    def get_data_info(self, idx: int) -> dict:
        """Annotation of sample ``idx`` (before the pipeline), as the wrapped data set's."""
        return self.dataset.get_data_info(self.get_ori_index(idx))

    @force_full_init
    def get_cat_ids(self, idx: int) -> List[int]:
        """Category ids of sample ``idx`` (used by class-balanced samplers)."""
        return self.dataset.get_cat_ids(self.get_ori_index(idx))

    @force_full_init
    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, idx: int):
        if not self._fully_initialized:
            self.full_init()
        if not isinstance(self.dataset, BaseDataset):
            return self.dataset[self.get_ori_index(idx)]
        # mmengine's BaseDataset.__getitem__ would replace a rejected sample by one from
        # the whole data set; draw the replacement from this part instead.
        ori_idx = self.get_ori_index(idx)
        for _ in range(self.dataset.max_refetch + 1):
            data = self.dataset.prepare_data(ori_idx)
            if data is not None:
                return data
            if self.dataset.test_mode:
                raise RuntimeError(f'The pipeline of {type(self.dataset).__name__} returned '
                                   f'None for its sample {ori_idx} in test mode')
            ori_idx = self.get_ori_index(np.random.randint(len(self)))
        raise RuntimeError(f'No valid sample in part {self.part} after '
                           f'{self.dataset.max_refetch} tries; check the pipeline')

    def __repr__(self) -> str:
        size = len(self) if self._fully_initialized else 'not initialised'
        return (f'{type(self).__name__}(part={self.part}, num_parts={self.num_parts}, '
                f'seed={self.seed}, size={size}, dataset={type(self.dataset).__name__})')
