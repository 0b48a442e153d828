"""Missing or malformed data gives errors that name the path / entry and the fix."""
import copy
import json
import os.path as osp
import re
import shutil

import pytest

from mmsase.datasets import (DatasetFormatError, DatasetNotFoundError,
                             check_classification_ann_file, check_coco_annotations,
                             check_coco_file)
from mmsase.registry import DATASETS

SHAPE_CLASSES = ('circle', 'square', 'triangle')


def _coco_cfg(data_root, ann_file='annotations/instances_val.json', img='val/', **kwargs):
    return dict(type='mmsase.CocoDataset', data_root=data_root, ann_file=ann_file,
                data_prefix=dict(img=img), metainfo=dict(classes=SHAPE_CLASSES), **kwargs)


@pytest.fixture(scope='module')
def val_coco(coco_root):
    with open(osp.join(coco_root, 'annotations', 'instances_val.json')) as f:
        return json.load(f)


# --------------------------------------------------------------------------- COCO


def test_checked_coco_dataset_equals_mmdet(coco_root):
    from mmdet.datasets import CocoDataset
    ours = DATASETS.build(_coco_cfg(coco_root))
    cfg = _coco_cfg(coco_root)
    cfg.pop('type')
    theirs = CocoDataset(**cfg)
    assert len(ours) == len(theirs) == 4
    assert [ours.get_data_info(i) for i in range(4)] == \
        [theirs.get_data_info(i) for i in range(4)]


def test_missing_data_root(tmp_path):
    missing = str(tmp_path / 'no_coco')
    with pytest.raises(DatasetNotFoundError) as error:
        DATASETS.build(_coco_cfg(missing))
    message = str(error.value)
    assert osp.join(missing, 'annotations', 'instances_val.json') in message
    assert f'python tools/generate_data.py coco {missing}' in message
    assert 'COCO 2017' in message


def test_missing_image_folder(coco_root):
    with pytest.raises(DatasetNotFoundError,
                       match="COCO image folder '.*/nowhere/' does not exist"):
        DATASETS.build(_coco_cfg(coco_root, img='nowhere/'))


BROKEN = {
    'bbox with 3 numbers': (lambda a: a.update(bbox=[1.0, 2.0, 3.0]),
                            r"'bbox' must be 4 numbers \[x, y, width, height\], got "
                            r'\[1.0, 2.0, 3.0\]'),
    'negative width': (lambda a: a['bbox'].__setitem__(2, -5.0),
                       "'bbox' .* has a negative width or height"),
    'unknown category': (lambda a: a.update(category_id=99),
                         r"'category_id' 99 is not in 'categories' \(ids: 1, 2, 3\)"),
    'unknown image': (lambda a: a.update(image_id=999),
                      "'image_id' 999 is not the id of any entry of 'images'"),
    'missing image id': (lambda a: a.pop('image_id'), "'image_id' is missing"),
    'odd polygon': (lambda a: a['segmentation'][0].pop(),
                    "'segmentation' polygon 0 has an odd number of coordinates"),
    'no area': (lambda a: a.pop('area'), "'area' must be a number >= 0, got None"),
}


@pytest.mark.parametrize('problem', sorted(BROKEN))
def test_broken_annotation_is_named(coco_root, val_coco, tmp_path, problem):
    """The error names the file, the annotation id and what is wrong, both from the
    dataset class and from the standalone checker."""
    break_it, expected = BROKEN[problem]
    coco = copy.deepcopy(val_coco)
    ann = coco['annotations'][2]
    break_it(ann)
    root = tmp_path / 'coco'
    (root / 'annotations').mkdir(parents=True)
    ann_file = str(root / 'annotations' / 'instances_val.json')
    with open(ann_file, 'w') as f:
        json.dump(coco, f)
    shutil.copytree(osp.join(coco_root, 'val'), root / 'val')
    for attempt in (lambda: DATASETS.build(_coco_cfg(str(root))),
                    lambda: check_coco_file(ann_file)):
        with pytest.raises(DatasetFormatError) as error:
            attempt()
        message = str(error.value)
        assert ann_file in message
        assert f"annotation id {ann['id']}" in message
        assert 'problem(s)' in message
        assert len(message.splitlines()) == 2  # exactly one problem reported
        assert re.search(expected, message), message


def test_many_problems_are_counted_and_few_shown(val_coco):
    coco = copy.deepcopy(val_coco)
    for ann in coco['annotations']:
        ann['category_id'] = 7
    coco['images'][0]['width'] = 0
    coco['annotations'][1]['id'] = coco['annotations'][0]['id']
    with pytest.raises(DatasetFormatError) as error:
        check_coco_annotations(coco, source='x.json', max_shown=3)
    message = str(error.value)
    total = len(coco['annotations']) + 2
    assert f"'x.json': {total} problem(s)" in message
    assert f'... and {total - 3} more' in message
    assert "'width' must be a positive integer, got 0" in message


def test_structural_problems():
    with pytest.raises(DatasetFormatError, match="must have a list 'images'"):
        check_coco_annotations({'categories': []}, source='s.json')
    with pytest.raises(DatasetFormatError, match='top level must be a JSON object'):
        check_coco_annotations([], source='s.json')


def test_not_json(tmp_path):
    path = tmp_path / 'bad.json'
    path.write_text('{"images": [')
    with pytest.raises(DatasetFormatError, match='is not valid JSON'):
        check_coco_file(str(path))


def test_classes_not_in_file(coco_root):
    cfg = _coco_cfg(coco_root)
    cfg['metainfo'] = dict(classes=('person', 'car'))
    with pytest.raises(DatasetFormatError, match="None of the 2 classes \\('person', 'car'\\)"):
        DATASETS.build(cfg)


# --------------------------------------------------------------------------- CIFAR-10


def test_cifar10_missing_root(tmp_path):
    missing = str(tmp_path / 'no_cifar')
    with pytest.raises(DatasetNotFoundError) as error:
        DATASETS.build(dict(type='mmsase.CIFAR10', data_root=missing, split='train'))
    message = str(error.value)
    assert osp.join(missing, 'cifar-10-batches-py') in message
    assert f'python tools/generate_data.py cifar10 {missing}' in message
    assert 'cifar-10-python.tar.gz' in message


def test_cifar10_md5_mismatch_says_what_to_do(cifar10_root):
    with pytest.raises(DatasetFormatError, match='verify_md5=False'):
        DATASETS.build(dict(type='mmsase.CIFAR10', data_root=cifar10_root, split='test'))
    dataset = DATASETS.build(dict(type='mmsase.CIFAR10', data_root=cifar10_root,
                                  split='test', verify_md5=False))
    assert len(dataset) == 20
    # the md5 table is cleared on the instance only
    from mmpretrain.datasets import CIFAR10
    assert all(md5 for _, md5 in CIFAR10.train_list + CIFAR10.test_list)


# --------------------------------------------------------------------------- ImageNet


def test_imagenet_missing_root(tmp_path):
    missing = str(tmp_path / 'no_imagenet')
    with pytest.raises(DatasetNotFoundError) as error:
        DATASETS.build(dict(type='mmsase.ImageNet', data_root=missing, split='train'))
    message = str(error.value)
    assert osp.join(missing, 'train') in message
    assert f'python tools/generate_data.py imagenet {missing}' in message


def test_imagenet_checked_equals_mmpretrain(imagenet_root):
    from mmpretrain.datasets import ImageNet
    classes = osp.join(imagenet_root, 'meta', 'classes.txt')
    ours = DATASETS.build(dict(type='mmsase.ImageNet', data_root=imagenet_root,
                               split='val', classes=classes))
    theirs = ImageNet(data_root=imagenet_root, split='val', classes=classes)
    assert ours.load_data_list() == theirs.load_data_list()
    assert len(ours) == 8


def test_imagenet_folder_count_differs_from_classes(imagenet_root):
    # no ann_file: folders are scanned, but ImageNet's default is the 1000 class names
    with pytest.raises(DatasetFormatError, match='has 4 class folders but the data set has '
                       '1000 classes; pass the class names'):
        DATASETS.build(dict(type='mmsase.ImageNet', data_root=imagenet_root,
                            data_prefix='train'))


def test_imagenet_bad_label(imagenet_root, tmp_path):
    ann_file = tmp_path / 'train.txt'
    ann_file.write_text('n00000000/n00000000_0.JPEG 0\nn00000001/n00000001_0.JPEG 4\n'
                        'n00000002/n00000002_0.JPEG\n')
    with pytest.raises(DatasetFormatError) as error:
        DATASETS.build(dict(type='mmsase.ImageNet', data_root=imagenet_root,
                            data_prefix='train', ann_file=str(ann_file),
                            classes=['a', 'b', 'c', 'd']))
    message = str(error.value)
    assert str(ann_file) in message and '2 problem(s)' in message
    assert 'line 2: label 4 is out of range for 4 classes (0..3)' in message
    assert "line 3: expected '<relative path> <integer label>'" in message


def test_check_classification_ann_file(imagenet_root, tmp_path):
    check_classification_ann_file(osp.join(imagenet_root, 'meta', 'train.txt'), 4)
    with pytest.raises(DatasetFormatError, match='out of range for 3 classes'):
        check_classification_ann_file(osp.join(imagenet_root, 'meta', 'train.txt'), 3)
    with pytest.raises(DatasetNotFoundError, match='nothing.txt'):
        check_classification_ann_file(str(tmp_path / 'nothing.txt'), 3)
