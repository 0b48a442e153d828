"""SplitDataset / HalfSplit: deterministic, disjoint parts that cover the data set."""
import numpy as np
import pytest
from mmengine.dataset import DefaultSampler, pseudo_collate
from torch.utils.data import DataLoader

from mmsase.datasets import Digits32, SplitDataset, split_indices
from mmsase.registry import DATASETS


@pytest.fixture(scope='module')
def digits():
    return Digits32(split='train')


@pytest.mark.parametrize('num, parts', [(10, 2), (11, 2), (1437, 3), (5, 5), (0, 2)])
def test_split_indices_partition(num, parts):
    chunks = split_indices(num, parts, seed=0)
    assert len(chunks) == parts
    assert sorted(np.concatenate(chunks).tolist()) == list(range(num))
    assert max(map(len, chunks)) - min(map(len, chunks)) <= 1


def test_split_indices_deterministic_by_seed():
    a, b, c = (split_indices(100, 2, seed=s) for s in (0, 0, 1))
    assert all((x == y).all() for x, y in zip(a, b))
    assert not (a[0] == c[0]).all()
    expected = np.array_split(np.random.default_rng(7).permutation(20), 2)
    assert all((x == y).all() for x, y in zip(split_indices(20, 2, 7), expected))


def test_halves_are_disjoint_and_cover(digits):
    halves = [SplitDataset(digits, part=p, seed=0) for p in (0, 1)]
    assert [len(h) for h in halves] == [719, 718]
    origin = [{h.get_ori_index(i) for i in range(len(h))} for h in halves]
    assert not origin[0] & origin[1]
    assert origin[0] | origin[1] == set(range(len(digits)))
    for half in halves:
        assert half.metainfo == digits.metainfo
        for i in (0, len(half) - 1):
            j = half.get_ori_index(i)
            np.testing.assert_array_equal(half.get_data_info(i)['img'],
                                          digits.get_data_info(j)['img'])
            assert half.get_cat_ids(i) == digits.get_cat_ids(j)
            assert half[i]['gt_label'] == digits[j]['gt_label']


def test_built_from_config_by_both_names(cifar10_root):
    inner = dict(type='mmsase.CIFAR10', data_root=cifar10_root, split='train',
                 verify_md5=False)
    half = DATASETS.build(dict(type='mmsase.HalfSplit', dataset=inner, part=1, seed=3))
    third = DATASETS.build(dict(type='mmsase.SplitDataset', dataset=inner, part=2,
                                num_parts=3, seed=3))
    assert isinstance(half, SplitDataset) and isinstance(third, SplitDataset)
    assert len(half) == 20 and len(third) == 13
    assert half.indices.tolist() == split_indices(40, 2, 3)[1].tolist()
    assert half.metainfo['classes'][0] == 'airplane'


def test_lazy_init_and_sampler(digits):
    half = SplitDataset(digits, part=0, lazy_init=True)
    assert not half._fully_initialized and 'not initialised' in repr(half)
    loader = DataLoader(half, batch_size=64, collate_fn=pseudo_collate,
                        sampler=DefaultSampler(half, shuffle=True, seed=0))
    assert half._fully_initialized
    assert sum(len(batch['gt_label']) for batch in loader) == 719


def test_rejected_samples_are_replaced_from_the_same_part():
    """A pipeline that rejects odd samples: replacements still come from this part."""
    dataset = Digits32(split='test', pipeline=[
        lambda results: None if results['sample_idx'] % 2 else results])
    half = SplitDataset(dataset, part=0)
    allowed = {half.get_ori_index(i) for i in range(len(half))}
    np.random.seed(0)
    for i in range(len(half)):
        assert half[i]['sample_idx'] in allowed
        assert half[i]['sample_idx'] % 2 == 0


def test_bad_part():
    with pytest.raises(ValueError, match='part'):
        SplitDataset(dict(type='mmsase.Digits32'), part=2, num_parts=2)


@pytest.mark.parametrize('seed', [None, 1.5, True, '0'])
def test_seed_must_be_an_int(seed):
    """seed=None would draw each part's permutation afresh: overlapping 'halves'."""
    with pytest.raises(ValueError, match=f'seed must be an int.*got {seed!r}'):
        SplitDataset(dict(type='mmsase.Digits32'), part=0, seed=seed)
