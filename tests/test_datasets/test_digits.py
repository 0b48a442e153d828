"""Digits32: scikit-learn's digits at 32x32, split deterministically by a seed."""
from collections import Counter

import numpy as np
import pytest

from mmsase.datasets import Digits32, load_digits_32
from mmsase.registry import DATASETS


def _image_counts(dataset):
    return Counter((dataset.get_data_info(i)['img'].tobytes(),
                    dataset.get_data_info(i)['gt_label']) for i in range(len(dataset)))


def test_load_digits_32():
    images, labels = load_digits_32()
    assert images.shape == (1797, 32, 32, 3) and images.dtype == np.uint8
    assert labels.shape == (1797, ) and labels.dtype == np.int64
    assert set(labels.tolist()) == set(range(10))
    # grey (equal channels), 2-pixel black border, full 0..255 range inside
    assert (images == images[..., :1]).all()
    assert images[:, :2].max() == images[:, -2:].max() == 0
    assert images[:, :, :2].max() == images[:, :, -2:].max() == 0
    assert images.max() == 255


def test_split_sizes_cover_all_and_are_disjoint():
    train, test = Digits32(split='train'), Digits32(split='test')
    assert (len(train), len(test)) == (1437, 360)
    assert train.CLASSES == tuple('0123456789')
    images, labels = load_digits_32()
    everything = Counter(zip((img.tobytes() for img in images), labels.tolist()))
    assert _image_counts(train) + _image_counts(test) == everything


def test_split_is_deterministic_by_seed():
    first, again = Digits32(split='test', seed=1), Digits32(split='test', seed=1)
    other = Digits32(split='test', seed=2)
    assert _image_counts(first) == _image_counts(again)
    assert _image_counts(first) != _image_counts(other)
    assert len(Digits32(split='test', num_test=100)) == 100


def test_built_from_config_with_a_pipeline():
    dataset = DATASETS.build(dict(type='mmsase.Digits32', split='test',
                                  pipeline=[dict(type='mmpretrain.PackInputs')]))
    sample = dataset[0]
    assert tuple(sample['inputs'].shape) == (3, 32, 32)
    assert sample['data_samples'].gt_label.item() == dataset.get_data_info(0)['gt_label']


def test_bad_arguments():
    with pytest.raises(ValueError, match='split'):
        Digits32(split='val')
    with pytest.raises(ValueError, match='num_test'):
        Digits32(num_test=0)
