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

__all__ = ['Digits32', 'digits_split_indices']

#: Number of scikit-learn's handwritten digits.
NUM_DIGITS = 1797


def digits_split_indices(split: str = 'train', num_test: int = 360, seed: int = 0) -> np.ndarray:
    """Indices of the digits of one split of :class:`Digits32`, into scikit-learn's order.

    scikit-learn's 1797 digits are permuted with ``numpy.random.default_rng(seed)``; the
    first ``num_test`` of the permutation are the test split, the rest the train split.
    Data sets built on the same digits (e.g. :class:`~mmsase.datasets.ClutteredDigits`) use
    this function, so that with the same ``num_test`` and ``seed`` no test digit is ever
    seen in training.

    Args:
        split: ``'train'`` or ``'test'``.
        num_test: Size of the test split, 1..1796. Defaults to 360 (20 %).
        seed: Seed of the permutation. Defaults to 0.

    Returns:
        np.ndarray: int64 ``(num_test,)`` or ``(1797 - num_test,)``, sorted ascending.
    """
    if split not in ('train', 'test'):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if not 0 < num_test < NUM_DIGITS:
        raise ValueError(f'num_test must be in 1..{NUM_DIGITS - 1}, got {num_test}')
    order = np.random.default_rng(seed).permutation(NUM_DIGITS)
    return np.sort(order[:num_test] if split == 'test' else order[num_test:])


@DATASETS.register_module()
class Digits32(BaseDataset):
    """scikit-learn's handwritten digits at 32x32, split into train and test by a seed.

    A sample before the pipeline is ``dict(img=uint8 array (32, 32, 3) RGB,
    gt_label=int)`` -- the same form as mmpretrain's ``CIFAR10``, so a pipeline starts
    without ``LoadImageFromFile``. Classes are ``'0'`` .. ``'9'``.

    The split is a random permutation of the 1797 images by ``numpy.random.default_rng
    (seed)``: its first ``num_test`` images are the test split and the rest the train split
    (1437 / 360 with the defaults; see :func:`digits_split_indices`). Within a split,
    samples keep scikit-learn's order.

    Args:
        split (str): ``'train'`` or ``'test'``.
        num_test (int): Size of the test split. Defaults to 360 (20 %).
        seed (int): Seed of the split. Defaults to 0.
        **kwargs: Other arguments of mmpretrain's ``BaseDataset`` (``pipeline``,
            ``test_mode``, ``indices``, ``lazy_init``, ...).
    """

    METAINFO = {'classes': tuple(str(i) for i in range(10))}
    NUM_IMAGES = NUM_DIGITS

    def __init__(self, split: str = 'train', num_test: int = 360, seed: int = 0, **kwargs):
        digits_split_indices(split, num_test, seed)  # checks the arguments
        self.split = split
        self.num_test = num_test
        self.seed = seed
        super().__init__(ann_file='', **kwargs)

    def load_data_list(self) -> List[dict]:
        """Load the digits and keep this split's images."""
        images, labels = load_digits_32()
        chosen = digits_split_indices(self.split, self.num_test, self.seed)
        return [dict(img=images[i], gt_label=int(labels[i])) for i in chosen]

    def extra_repr(self) -> List[str]:
        """Lines for ``repr``: the split and its seed."""
        return [f'Split: \t{self.split} (seed {self.seed}, {self.num_test} test images)']
