"""ClutteredDigits: scikit-learn's digits at random places among clutter (Mnih et al. 2014).

The expectations are recomputed here from scikit-learn's raw 8x8 digits and the documented
recipe (the split permutation, the bilinear upsampling, the pixel-wise maximum of the
pieces), not from the code under test.
"""
import re
from collections import Counter

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits

from _tools import load_tool
from mmsase.datasets import (ClutteredDigits, Digits32, load_digits_32, make_cluttered_digits,
                             write_cluttered_digits)
from mmsase.registry import DATASETS

SMALL = dict(num_test=100, images_per_digit=1)  # 100 test images: quick per-image checks


@pytest.fixture(scope='module')
def sklearn_digits():
    """scikit-learn's digits: grey uint8 ``(1797, 8, 8)`` scaled to 0..255, labels."""
    digits = load_digits()
    return np.clip(digits.images * (255 / 16), 0, 255).astype(np.uint8), digits.target


def _split(split: str, num_test: int = 360, seed: int = 0) -> set:
    """Digits32's split, recomputed from its documented recipe."""
    order = np.random.default_rng(seed).permutation(1797)
    return set((order[:num_test] if split == 'test' else order[num_test:]).tolist())


def _resized(grey: np.ndarray, size: int) -> np.ndarray:
    return np.asarray(Image.fromarray(grey).resize((size, size), Image.Resampling.BILINEAR))


def _render(arrays: dict, i: int, grey: np.ndarray, canvas_size: int, digit_size: int,
            fragment_size: int) -> np.ndarray:
    """Image ``i`` redrawn from its record: the maximum of its fragments and its digit."""
    canvas = np.zeros((canvas_size, canvas_size), np.uint8)
    f = fragment_size
    for source, sy, sx, cy, cx in arrays['clutter'][i]:
        piece = _resized(grey[source], digit_size)[sy:sy + f, sx:sx + f]
        canvas[cy:cy + f, cx:cx + f] = np.maximum(canvas[cy:cy + f, cx:cx + f], piece)
    y, x = arrays['position'][i]
    digit = _resized(grey[arrays['source_index'][i]], digit_size)
    canvas[y:y + digit_size, x:x + digit_size] = np.maximum(
        canvas[y:y + digit_size, x:x + digit_size], digit)
    return canvas


def _assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_same_seed_same_images_other_seed_other_images():
    first = make_cluttered_digits('test', seed=3, **SMALL)
    _assert_same(first, make_cluttered_digits('test', seed=3, **SMALL))
    other = make_cluttered_digits('test', seed=4, **SMALL)
    assert (first['img'] != other['img']).any(axis=(1, 2, 3)).mean() > 0.9
    np.testing.assert_array_equal(first['source_index'], other['source_index'])
    # the data set serves exactly these arrays
    dataset = ClutteredDigits(split='test', seed=3, **SMALL)
    assert len(dataset) == 100
    for i in (0, 57, 99):
        info = dataset.get_data_info(i)
        np.testing.assert_array_equal(info['img'], first['img'][i])
        assert info['gt_label'] == first['gt_label'][i]
        assert info['source_index'] == first['source_index'][i]
        assert info['position'] == tuple(first['position'][i])
        np.testing.assert_array_equal(info['clutter'], first['clutter'][i])


def test_shapes_dtypes_and_grey_channels():
    arrays = make_cluttered_digits('test', canvas_size=40, digit_size=12, num_clutter=3,
                                   fragment_size=5, images_per_digit=2, num_test=100)
    assert arrays['img'].shape == (200, 40, 40, 3) and arrays['img'].dtype == np.uint8
    assert (arrays['img'] == arrays['img'][..., :1]).all()
    assert arrays['gt_label'].shape == (200, ) and arrays['gt_label'].dtype == np.int64
    assert arrays['position'].shape == (200, 2) and arrays['clutter'].shape == (200, 3, 5)
    assert 0 <= arrays['position'].min() and arrays['position'].max() <= 40 - 12
    assert arrays['clutter'][..., 1:3].max() <= 12 - 5
    assert arrays['clutter'][..., 3:].max() <= 40 - 5
    # each digit of the split twice: the split once, then again
    np.testing.assert_array_equal(arrays['source_index'][:100], arrays['source_index'][100:])
    assert (arrays['img'][:100] != arrays['img'][100:]).any(axis=(1, 2, 3)).all()
    # the defaults: 32x32 RGB like Digits32, 4 images per digit, 5748 / 1440
    default = ClutteredDigits(split='test')
    assert len(default) == 4 * 360 and default.CLASSES == tuple('0123456789')
    assert default.get_data_info(0)['img'].shape == Digits32(split='test').get_data_info(
        0)['img'].shape == (32, 32, 3)


def test_source_digits_are_digits32s_split_and_labels_theirs(sklearn_digits):
    grey, labels = sklearn_digits
    for split, size in (('train', 1437), ('test', 360)):
        arrays = make_cluttered_digits(split, num_clutter=0, images_per_digit=1)
        assert len(arrays['source_index']) == size
        assert set(arrays['source_index'].tolist()) == _split(split)
        np.testing.assert_array_equal(arrays['gt_label'], labels[arrays['source_index']])
        # the very digits of Digits32's split, as Digits32 shows them
        clean = load_digits_32()[0]
        digits32 = Digits32(split=split)
        assert Counter(clean[i].tobytes() for i in arrays['source_index']) == Counter(
            digits32.get_data_info(i)['img'].tobytes() for i in range(len(digits32)))
    other_seed = make_cluttered_digits('test', num_clutter=0, images_per_digit=1, num_test=50,
                                       split_seed=7)
    assert set(other_seed['source_index'].tolist()) == _split('test', 50, 7)


def test_without_clutter_the_canvas_is_the_digit_at_its_position(sklearn_digits):
    grey, _ = sklearn_digits
    # digit_size 8: scikit-learn's own pixels, no resampling at all
    arrays = make_cluttered_digits('test', digit_size=8, num_clutter=0, **SMALL)
    for i in range(len(arrays['img'])):
        y, x = arrays['position'][i]
        expected = np.zeros((32, 32), np.uint8)
        expected[y:y + 8, x:x + 8] = grey[arrays['source_index'][i]]
        np.testing.assert_array_equal(arrays['img'][i, :, :, 0], expected)
    # digit_size 16: the bilinear upsampling of that digit, and black elsewhere
    arrays = make_cluttered_digits('test', num_clutter=0, **SMALL)
    positions = set()
    for i in range(len(arrays['img'])):
        y, x = arrays['position'][i]
        positions.add((y, x))
        img = arrays['img'][i, :, :, 0].copy()
        np.testing.assert_array_equal(img[y:y + 16, x:x + 16],
                                      _resized(grey[arrays['source_index'][i]], 16))
        img[y:y + 16, x:x + 16] = 0
        assert not img.any()
    assert len(positions) > 50  # placed anywhere, not centred


def test_cluttered_canvas_is_its_recorded_pieces(sklearn_digits):
    grey, _ = sklearn_digits
    arrays = make_cluttered_digits('test', num_clutter=5, fragment_size=6, seed=1, **SMALL)
    for i in range(len(arrays['img'])):
        np.testing.assert_array_equal(arrays['img'][i, :, :, 0],
                                      _render(arrays, i, grey, 32, 16, 6))
    # the digit is never covered: its square holds at least its own ink
    y, x = arrays['position'][0]
    assert (arrays['img'][0, y:y + 16, x:x + 16, 0] >= _resized(
        grey[arrays['source_index'][0]], 16)).all()
    # clutter adds ink
    clean = make_cluttered_digits('test', num_clutter=0, seed=1, **SMALL)
    assert arrays['img'].sum() > clean['img'].sum()


def test_clutter_comes_from_other_digits_of_the_same_split():
    for split in ('train', 'test'):
        arrays = make_cluttered_digits(split, num_clutter=6, images_per_digit=2)
        sources = arrays['clutter'][..., 0]
        used = set(sources.ravel().tolist())
        assert used <= _split(split)
        assert not used & _split('train' if split == 'test' else 'test')
        assert (sources != arrays['source_index'][:, None]).all()
        assert len(used) > 0.9 * len(_split(split))  # drawn from the whole split


def test_built_from_config_with_a_pipeline():
    dataset = DATASETS.build(dict(type='mmsase.ClutteredDigits', split='test', **SMALL,
                                  pipeline=[dict(type='mmpretrain.PackInputs')]))
    sample = dataset[3]
    assert tuple(sample['inputs'].shape) == (3, 32, 32)
    assert sample['data_samples'].gt_label.item() == dataset.get_data_info(3)['gt_label']
    assert 'seed 0' in repr(dataset) and '6 fragments of 8x8' in repr(dataset)


def _load_cifar(root: str, split: str):
    dataset = DATASETS.build(dict(type='mmsase.CIFAR10', data_root=root, split=split,
                                  verify_md5=False, metainfo=dict(classes=None)))
    return dataset


def _assert_loads_back(root: str, **options) -> None:
    for split in ('train', 'test'):
        loaded = _load_cifar(root, split)
        expected = make_cluttered_digits(split, **options)
        assert loaded.CLASSES == tuple('0123456789')
        assert len(loaded) == len(expected['img'])
        np.testing.assert_array_equal(
            np.stack([loaded.get_data_info(i)['img'] for i in range(len(loaded))]),
            expected['img'])
        assert [loaded.get_data_info(i)['gt_label'] for i in range(len(loaded))] == \
            expected['gt_label'].tolist()


def test_cifar10_layout_loads_back_equal(tmp_path):
    options = dict(num_clutter=3, fragment_size=7, images_per_digit=1, seed=2,
                   num_test=1500)  # 297 train images
    paths = write_cluttered_digits(str(tmp_path), **options)
    assert (paths['num_train'], paths['num_test']) == (297, 1500)
    assert sorted(p.name for p in (tmp_path / 'cifar-10-batches-py').iterdir()) == [
        'batches.meta', 'data_batch_1', 'data_batch_2', 'data_batch_3', 'data_batch_4',
        'data_batch_5', 'test_batch']
    _assert_loads_back(str(tmp_path), **options)
    with pytest.raises(ValueError, match='32x32 images, got canvas_size=40'):
        write_cluttered_digits(str(tmp_path), canvas_size=40)


def test_generate_data_cli(tmp_path, capsys):
    main = load_tool('tools/generate_data.py').main
    out = str(tmp_path / 'cluttered')
    options = dict(num_clutter=2, fragment_size=6, images_per_digit=1, seed=5)
    main(['cluttered-digits', out, *(f'--{k.replace("_", "-")}={v}' for k, v in options.items())])
    printed = capsys.readouterr().out
    assert "dict(type='mmsase.CIFAR10'" in printed and 'verify_md5=False' in printed
    assert '1437 training images' in printed and '360 test images' in printed
    _assert_loads_back(out, **options)
    with pytest.raises(SystemExit):
        main(['cluttered-digits', out, '--num-train', '10'])
    assert '--num-train cannot be used' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(['cifar10', out, '--num-clutter', '2'])
    assert '--num-clutter only apply to cluttered-digits' in capsys.readouterr().err


@pytest.mark.parametrize('kwargs, message', [
    (dict(split='val'), "split must be 'train' or 'test', got 'val'"),
    (dict(digit_size=40), 'digit_size must be an int in 1..32, got 40'),
    (dict(fragment_size=17), 'fragment_size must be an int in 1..16, got 17'),
    (dict(num_clutter=-1), 'num_clutter must be an int >= 0, got -1'),
    (dict(images_per_digit=0), 'images_per_digit must be an int >= 1, got 0'),
    (dict(canvas_size=32.0), 'canvas_size must be an int >= 1, got 32.0'),
    (dict(num_test=1796), 'the train split has 1 digit'),
])
def test_bad_arguments_are_named(kwargs, message):
    kwargs = {'split': 'train', **kwargs}
    with pytest.raises(ValueError, match=re.escape(message)):
        ClutteredDigits(**kwargs)
