"""CIFAR-100 (and the CIFAR checks shared with CIFAR-10): the generated files are in the
official format, ``mmsase.CIFAR100`` loads their fine or coarse labels, and missing or
broken files give errors that name the file and what is wrong."""
import os.path as osp
import pickle
import shutil

import numpy as np
import pytest

from _tools import load_tool
from mmsase.datasets import (CIFAR100_CLASSES, CIFAR100_COARSE_CLASSES,
                             CIFAR100_FINE_TO_COARSE, COLOURS, DatasetFormatError,
                             DatasetNotFoundError, classification_class_names)
from mmsase.registry import DATASETS


# The fine -> coarse table as commonly written out from the official files' labels.
OFFICIAL_FINE_TO_COARSE = [
    4, 1, 14, 8, 0, 6, 7, 7, 18, 3, 3, 14, 9, 18, 7, 11, 3, 9, 7, 11,
    6, 11, 5, 10, 7, 6, 13, 15, 3, 15, 0, 11, 1, 10, 12, 14, 16, 9, 11, 5,
    5, 19, 8, 8, 15, 13, 14, 17, 18, 10, 16, 4, 17, 4, 2, 0, 17, 4, 18, 17,
    10, 3, 2, 12, 12, 16, 12, 1, 9, 19, 2, 10, 0, 1, 16, 12, 9, 13, 15, 13,
    16, 19, 2, 4, 6, 19, 5, 5, 8, 19, 18, 1, 2, 15, 6, 0, 17, 8, 14, 13,
]


def _build(root, split='train', **kwargs):
    kwargs.setdefault('verify_md5', False)
    return DATASETS.build(dict(type='mmsase.CIFAR100', data_root=root, split=split, **kwargs))


def _load(path, encoding='latin1'):
    with open(path, 'rb') as f:
        return pickle.load(f, encoding=encoding)


@pytest.fixture
def cifar100_copy(cifar100_root, tmp_path):
    """A copy of the generated set that a test may break; returns (root, folder)."""
    root = tmp_path / 'cifar100'
    shutil.copytree(cifar100_root, root)
    return str(root), str(root / 'cifar-100-python')


# --------------------------------------------------------------------------- the files


def test_names_and_mapping_are_the_official_ones():
    from mmpretrain.datasets.categories import CIFAR100_CATEGORIES
    assert CIFAR100_CLASSES == CIFAR100_CATEGORIES
    assert list(CIFAR100_FINE_TO_COARSE) == OFFICIAL_FINE_TO_COARSE
    assert len(CIFAR100_COARSE_CLASSES) == 20
    assert np.bincount(CIFAR100_FINE_TO_COARSE).tolist() == [5] * 20
    assert CIFAR100_CLASSES[CIFAR100_FINE_TO_COARSE.index(0)] == 'beaver'  # aquatic_mammals


def test_files_have_the_official_layout(cifar100_root):
    folder = osp.join(cifar100_root, 'cifar-100-python')
    for split, num, batch_label in (('train', 200, 'training batch 1 of 1'),
                                    ('test', 100, 'testing batch 1 of 1')):
        entry = _load(osp.join(folder, split))  # as mmpretrain and torchvision read it
        assert set(entry) == {'data', 'fine_labels', 'coarse_labels', 'filenames',
                              'batch_label'}
        assert entry['data'].dtype == np.uint8 and entry['data'].shape == (num, 3072)
        assert entry['batch_label'] == batch_label
        assert len(entry['filenames']) == len(entry['coarse_labels']) == num
        assert np.bincount(entry['fine_labels']).tolist() == [num // 100] * 100
        assert entry['coarse_labels'] == [CIFAR100_FINE_TO_COARSE[k]
                                          for k in entry['fine_labels']]
        assert entry['filenames'][0].startswith(CIFAR100_CLASSES[entry['fine_labels'][0]])
    # Python 2 strings, as in the official files: bytes with the CIFAR page's snippet
    raw = _load(osp.join(folder, 'test'), encoding='bytes')
    assert raw[b'batch_label'] == b'testing batch 1 of 1' and raw[b'data'].shape == (100, 3072)
    meta = _load(osp.join(folder, 'meta'))
    assert meta == dict(fine_label_names=list(CIFAR100_CLASSES),
                        coarse_label_names=list(CIFAR100_COARSE_CLASSES))


def test_images_show_their_labels(cifar100_root):
    """The shape's colour gives the superclass, the background's tint the class's rank
    within it (neutral, reddish, greenish, bluish, yellowish)."""
    entry = _load(osp.join(cifar100_root, 'cifar-100-python', 'test'))
    images = entry['data'].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).astype(int)
    colours = np.array(list(COLOURS.values()))
    names = classification_class_names(20)
    for img, fine, coarse in zip(images, entry['fine_labels'], entry['coarse_labels']):
        saturated = (img.max(axis=2) - img.min(axis=2)) > 70
        colour = img[saturated].mean(axis=0)
        assert names[coarse].startswith(
            list(COLOURS)[np.argmin(((colours - colour)**2).sum(axis=1))])
        tint = img[~saturated].mean(axis=0)
        tint -= tint.mean()
        rank = [k for k in range(100) if CIFAR100_FINE_TO_COARSE[k] == coarse].index(fine)
        if rank == 0:
            assert np.abs(tint).max() < 6
        elif rank in (1, 2, 3):
            assert np.argmax(tint) == rank - 1 and tint.max() > 10
        else:
            assert np.argmin(tint) == 2 and tint.min() < -10


# --------------------------------------------------------------------------- loading


def test_fine_labels_as_mmpretrain(cifar100_root):
    from mmpretrain.datasets import CIFAR100
    ours = _build(cifar100_root)
    assert len(ours) == 200 and ours.CLASSES == CIFAR100_CLASSES
    assert np.bincount(ours.get_gt_labels()).tolist() == [2] * 100
    info = ours.get_data_info(0)
    assert info['img'].shape == (32, 32, 3) and info['img'].dtype == np.uint8
    # mmpretrain's own loader, its md5 table (which generated files cannot match) cleared
    theirs = CIFAR100(data_root=cifar100_root, split='train', download=False, lazy_init=True)
    theirs.train_list = [[name, None] for name, _ in theirs.train_list]
    theirs.test_list = [[name, None] for name, _ in theirs.test_list]
    theirs.full_init()
    assert theirs.CLASSES == ours.CLASSES
    for i in (0, 99, 199):
        np.testing.assert_array_equal(ours.get_data_info(i)['img'],
                                      theirs.get_data_info(i)['img'])
        assert ours.get_data_info(i)['gt_label'] == theirs.get_data_info(i)['gt_label']


def test_coarse_labels(cifar100_root):
    fine = _build(cifar100_root, split='test')
    coarse = _build(cifar100_root, split='test', label_type='coarse')
    assert len(coarse) == 100 and coarse.CLASSES == CIFAR100_COARSE_CLASSES
    assert np.bincount(coarse.get_gt_labels()).tolist() == [5] * 20
    assert coarse.get_gt_labels().tolist() == [CIFAR100_FINE_TO_COARSE[k]
                                               for k in fine.get_gt_labels()]
    np.testing.assert_array_equal(coarse.get_data_info(7)['img'], fine.get_data_info(7)['img'])
    assert 'Label type: \tcoarse' in repr(coarse)
    # classes=None: the names come from the meta file's 'coarse_label_names'
    from_meta = _build(cifar100_root, split='test', label_type='coarse',
                       metainfo=dict(classes=None))
    assert list(from_meta.CLASSES) == list(CIFAR100_COARSE_CLASSES)
    with pytest.raises(ValueError, match="label_type must be one of \\('fine', 'coarse'\\)"):
        _build(cifar100_root, label_type='superclass')


def test_config_builds_a_dataloader(cifar100_root):
    from mmengine.runner import Runner
    pipeline = [dict(type='mmpretrain.RandomCrop', crop_size=32, padding=4),
                dict(type='mmpretrain.RandomFlip', prob=0.5, direction='horizontal'),
                dict(type='mmpretrain.PackInputs')]
    loader = Runner.build_dataloader(dict(
        batch_size=8, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=False),
        dataset=dict(type='mmsase.CIFAR100', data_root=cifar100_root, split='train',
                     verify_md5=False, label_type='coarse', pipeline=pipeline)))
    batch = next(iter(loader))
    assert len(batch['inputs']) == 8 and tuple(batch['inputs'][0].shape) == (3, 32, 32)
    labels = [s.gt_label.item() for s in batch['data_samples']]
    assert labels == loader.dataset.get_gt_labels()[:8].tolist()
    assert max(labels) < 20


def test_bytes_keys_are_read_too(cifar100_copy):
    """Files rewritten by Python 3 with ``bytes`` keys (``entry[b'data']``) load as well."""
    root, folder = cifar100_copy
    entry = _load(osp.join(folder, 'test'), encoding='bytes')
    with open(osp.join(folder, 'test'), 'wb') as f:
        pickle.dump(entry, f, protocol=4)
    assert len(_build(root, split='test')) == 100


# --------------------------------------------------------------------------- errors


def test_missing_root(tmp_path):
    missing = str(tmp_path / 'no_cifar100')
    with pytest.raises(DatasetNotFoundError) as error:
        DATASETS.build(dict(type='mmsase.CIFAR100', data_root=missing, split='train'))
    message = str(error.value)
    assert f"{osp.join(missing, 'cifar-100-python')!r} does not exist" in message
    assert f'python tools/generate_data.py cifar100 {missing}' in message
    assert 'cifar-100-python.tar.gz' in message


def test_data_root_is_the_folder_itself(cifar100_root):
    inner = osp.join(cifar100_root, 'cifar-100-python')
    with pytest.raises(DatasetNotFoundError,
                       match=f'data_root must be the folder that contains cifar-100-python/ '
                       f"\\(here '{cifar100_root}'\\)"):
        _build(inner)


def test_missing_file(cifar100_copy):
    root, folder = cifar100_copy
    shutil.os.remove(osp.join(folder, 'test'))
    with pytest.raises(DatasetNotFoundError, match="cifar-100-python' lacks test"):
        _build(root)


def test_md5_mismatch_says_what_to_do(cifar100_root):
    with pytest.raises(DatasetFormatError, match='official CIFAR-100 release.*verify_md5=False'):
        _build(cifar100_root, split='test', verify_md5=True)
    from mmpretrain.datasets import CIFAR100
    assert all(md5 for _, md5 in CIFAR100.train_list + CIFAR100.test_list)  # class untouched


@pytest.mark.parametrize('damage', ['truncated', 'garbage', 'empty'])
def test_unreadable_file_is_named(cifar100_copy, damage):
    root, folder = cifar100_copy
    path = osp.join(folder, 'train')
    with open(path, 'rb') as f:
        raw = f.read()
    broken = {'truncated': raw[:len(raw) // 2], 'garbage': b'\x00not a pickle' * 9,
              'empty': b''}[damage]
    with open(path, 'wb') as f:
        f.write(broken)
    with pytest.raises(DatasetFormatError) as error:
        _build(root)
    message = str(error.value)
    assert f"CIFAR-100 file '{path}' ({len(broken)} bytes) is not a readable pickle" in message
    assert 'generate_data.py cifar100' in message


def _rewrite(folder, name, change):
    path = osp.join(folder, name)
    entry = _load(path)
    change(entry)
    with open(path, 'wb') as f:
        pickle.dump(entry, f, protocol=2)
    return path


BROKEN = {
    'no fine labels': (lambda e: e.pop('fine_labels'), {},
                       r"it has no key 'fine_labels' \(keys: 'filenames', 'batch_label', "
                       r"'coarse_labels', 'data'\)"),
    'no coarse labels': (lambda e: e.pop('coarse_labels'), dict(label_type='coarse'),
                         "it has no key 'coarse_labels'"),
    'no data': (lambda e: e.pop('data'), {}, "it has no key 'data'"),
    'float data': (lambda e: e.update(data=e['data'].astype(np.float32)), {},
                   r"'data' must be a uint8 array of shape \(N, 3072\) .*, got a float32 "
                   r'array of shape \(100, 3072\)'),
    'HWC images': (lambda e: e.update(data=e['data'].reshape(100, 32, 32, 3)), {},
                   r'got a uint8 array of shape \(100, 32, 32, 3\)'),
    'short labels': (lambda e: e['fine_labels'].pop(), {},
                     "'fine_labels' has 99 labels for 100 images"),
    'label 100': (lambda e: e['fine_labels'].__setitem__(3, 100), {},
                  r"'fine_labels' has 1 label\(s\) outside 0..99 \(the 100 classes\), e.g. "
                  '100 at index 3'),
    'coarse label 20': (lambda e: e['coarse_labels'].__setitem__(5, 20),
                        dict(label_type='coarse'),
                        r"'coarse_labels' has 1 label\(s\) outside 0..19 .* at index 5"),
    'string labels': (lambda e: e.update(fine_labels=[str(k) for k in e['fine_labels']]), {},
                      "'fine_labels' must be a flat list of ints"),
}


@pytest.mark.parametrize('problem', sorted(BROKEN))
def test_malformed_file_is_named(cifar100_copy, problem):
    change, kwargs, expected = BROKEN[problem]
    root, folder = cifar100_copy
    path = _rewrite(folder, 'test', change)
    with pytest.raises(DatasetFormatError, match=expected) as error:
        _build(root, split='test', **kwargs)
    assert str(error.value).startswith(f"Invalid CIFAR-100 file '{path}': ")


def test_not_a_dict(cifar100_copy):
    root, folder = cifar100_copy
    with open(osp.join(folder, 'test'), 'wb') as f:
        pickle.dump([1, 2, 3], f)
    with pytest.raises(DatasetFormatError, match='it must hold a pickled dict, got a list'):
        _build(root, split='test')


def test_cifar10_shares_the_checks(cifar10_root, tmp_path):
    root = tmp_path / 'cifar10'
    shutil.copytree(cifar10_root, root)
    path = str(root / 'cifar-10-batches-py' / 'data_batch_3')
    with open(path, 'r+b') as f:
        f.truncate(100)
    with pytest.raises(DatasetFormatError,
                       match=f"CIFAR-10 file '{path}' \\(100 bytes\\) is not a readable pickle"):
        DATASETS.build(dict(type='mmsase.CIFAR10', data_root=str(root), verify_md5=False))
    # the test split does not read data_batch_3
    test = DATASETS.build(dict(type='mmsase.CIFAR10', data_root=str(root), split='test',
                               verify_md5=False))
    assert len(test) == 20
    _rewrite(str(root / 'cifar-10-batches-py'), 'test_batch',
             lambda e: e['labels'].__setitem__(0, 10))
    with pytest.raises(DatasetFormatError, match=r"'labels' has 1 label\(s\) outside 0..9"):
        DATASETS.build(dict(type='mmsase.CIFAR10', data_root=str(root), split='test',
                            verify_md5=False))


# --------------------------------------------------------------------------- CLI


def test_generate_data_cli(tmp_path, capsys):
    module = load_tool('tools/generate_data.py')
    out = str(tmp_path / 'c100')
    module.main(['cifar100', out, '--num-train', '100', '--num-test', '20', '--seed', '3'])
    printed = capsys.readouterr().out
    assert "dict(type='mmsase.CIFAR100'" in printed and 'verify_md5=False' in printed
    assert (len(_build(out)), len(_build(out, split='test'))) == (100, 20)
    with pytest.raises(SystemExit):
        module.main(['cifar100', out, '--num-classes', '10'])
    assert 'cifar100 has fixed 32x32 images and 100 classes' in capsys.readouterr().err
