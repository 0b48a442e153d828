"""The first ``N`` samples of every class, or the rest: EAN's held-out split.

EAN (gbup-group/EAN-efficient-attention-network, ``train_imagenet_ensemble_subset.py`` and
``search_imagent/EAN_search.py``) trains its supernet on ImageNet's training set less the first
100 images of each class (in the data set's order: torchvision's ``ImageFolder``, sorted file
names) and rewards the controller's codes on those 100 000 images::

    heldout = dict(type='mmsase.PerClassSplit', part=0, num_per_class=100, dataset=dict(
        type='mmsase.ImageNet', data_root='data/imagenet', split='train', pipeline=...))
    # the supernet's training set: the same with part=1
"""
from collections import defaultdict
from typing import Union

import numpy as np
from mmengine.dataset import BaseDataset

from mmsase.registry import DATASETS
from .split import SplitDataset

__all__ = ['PerClassSplit', 'per_class_indices']


def per_class_indices(labels, num_per_class: int):
    """``(head, rest)``: the indices of the first ``num_per_class`` samples of every class
    (in data set order) and of all the others, both ascending."""
    if num_per_class < 0:
        raise ValueError(f'num_per_class must be >= 0, got {num_per_class}')
    seen = defaultdict(int)
    head, rest = [], []
    for index, label in enumerate(np.asarray(labels).tolist()):
        (head if seen[label] < num_per_class else rest).append(index)
        seen[label] += 1
    return np.asarray(head, dtype=np.int64), np.asarray(rest, dtype=np.int64)


@DATASETS.register_module()
class PerClassSplit(SplitDataset):
    """``part=0``: the first ``num_per_class`` samples of every class; ``part=1``: the rest.

    The wrapped data set's labels come from its ``get_gt_labels()`` (mmpretrain) or
    ``get_cat_ids(i)``; everything else is :class:`SplitDataset`'s (same sample access, same
    refetching of rejected samples within the part).

    Args:
        dataset (dict | Dataset): the data set to split (a config or a built one).
        part (int): 0 (the head of every class) or 1 (the rest).
        num_per_class (int): samples per class in part 0 (EAN on ImageNet: 100).
        lazy_init (bool): defer building the index until first use.
    """

    def __init__(self, dataset: Union[dict, BaseDataset], part: int = 0,
                 num_per_class: int = 100, lazy_init: bool = False):
        self.num_per_class = num_per_class
        super().__init__(dataset, part=part, num_parts=2, seed=0, lazy_init=lazy_init)

    def full_init(self) -> None:
        if self._fully_initialized:
            return
        if hasattr(self.dataset, 'full_init'):
            self.dataset.full_init()
        if hasattr(self.dataset, 'get_gt_labels'):
            labels = self.dataset.get_gt_labels()
        else:
            labels = [self.dataset.get_cat_ids(i)[0] for i in range(len(self.dataset))]
        self.indices = per_class_indices(labels, self.num_per_class)[self.part]
        self._fully_initialized = True

    def __repr__(self) -> str:
        size = len(self) if self._fully_initialized else 'not initialised'
        return (f'{type(self).__name__}(part={self.part}, num_per_class={self.num_per_class}, '
                f'size={size}, dataset={type(self.dataset).__name__})')
