"""``Digits32``: scikit-learn's handwritten digits as a small, real, embedded data set.

The 1797 8x8 digits ship inside scikit-learn (no download); :func:`load_digits_32` turns
them into 32x32 RGB images, so CIFAR-sized models and pipelines run on them unchanged::

    train_dataloader = dict(dataset=dict(
        type='mmsase.Digits32', split='train',
        pipeline=[dict(type='mmpretrain.PackInputs')]))
"""
from typing import List

import numpy as np
from mmpretrain.datasets import BaseDataset

from mmsase.registry import DATASETS
from .synthetic import load_digits_32

__all__ = ['Digits32']


@DATASETS.register_module()
class Digits32(BaseDataset):
    """scikit-learn's handwritten digits at 32x32, split into train and test by a seed.

    A sample before the pipeline is ``dict(img=uint8 array (32, 32, 3) RGB,
    gt_label=int)`` -- the same form as mmpretrain's ``CIFAR10``, so a pipeline starts
    without ``LoadImageFromFile``. Classes are ``'0'`` .. ``'9'``.

    The split is a random permutation of the 1797 images by ``numpy.random.default_rng
    (seed)``: its first ``num_test`` images are the test split and the rest the train split
    (1437 / 360 with the defaults). Within a split, samples keep scikit-learn's order.

    Args:
        split (str): ``'train'`` or ``'test'``.
        num_test (int): Size of the test split. Defaults to 360 (20 %).
        seed (int): Seed of the split. Defaults to 0.
        **kwargs: Other arguments of mmpretrain's ``BaseDataset`` (``pipeline``,
            ``test_mode``, ``indices``, ``lazy_init``, ...).
    """

    METAINFO = {'classes': tuple(str(i) for i in range(10))}
    NUM_IMAGES = 1797

    def __init__(self, split: str = 'train', num_test: int = 360, seed: int = 0, **kwargs):
        if split not in ('train', 'test'):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        if not 0 < num_test < self.NUM_IMAGES:
            raise ValueError(f'num_test must be in 1..{self.NUM_IMAGES - 1}, got {num_test}')
        self.split = split
        self.num_test = num_test
        self.seed = seed
        super().__init__(ann_file='', **kwargs)

    def load_data_list(self) -> List[dict]:
        """Load the digits and keep this split's images."""
        images, labels = load_digits_32()
        order = np.random.default_rng(self.seed).permutation(len(labels))
        chosen = order[:self.num_test] if self.split == 'test' else order[self.num_test:]
        return [dict(img=images[i], gt_label=int(labels[i])) for i in np.sort(chosen)]

    def extra_repr(self) -> List[str]:
        """Lines for ``repr``: the split and its seed."""
        return [f'Split: \t{self.split} (seed {self.seed}, {self.num_test} test images)']
