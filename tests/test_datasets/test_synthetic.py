"""The generated sets are in the real formats: the unmodified mmdet / mmpretrain /
pycocotools code loads them, and what it loads is what was written."""
import json
import os.path as osp
import pickle

import numpy as np
import pytest
from PIL import Image

from _tools import load_tool
from mmsase.datasets import (CIFAR10_CLASSES, COLOURS, SHAPES, classification_class_names,
                             write_coco_dataset)

SHAPE_CLASSES = ('circle', 'square', 'triangle')


def _saturated(pixels: np.ndarray) -> np.ndarray:
    """Mask ``(H, W)`` of strongly coloured pixels: the shapes, not the grey background."""
    pixels = pixels.astype(int)
    return (pixels.max(axis=2) - pixels.min(axis=2)) > 70


def _load_json(path):
    with open(path) as f:
        return json.load(f)


# --------------------------------------------------------------------------- COCO


def test_coco_files_and_counts(coco_root):
    for split, num in (('train', 8), ('val', 4)):
        coco = _load_json(osp.join(coco_root, 'annotations', f'instances_{split}.json'))
        assert [c['name'] for c in coco['categories']] == list(SHAPE_CLASSES)
        assert [c['id'] for c in coco['categories']] == [1, 2, 3]
        assert len(coco['images']) == num
        per_image = np.bincount([a['image_id'] for a in coco['annotations']],
                                minlength=num + 1)[1:]
        assert per_image.min() >= 1 and per_image.max() <= 3
        assert len({a['id'] for a in coco['annotations']}) == len(coco['annotations'])
        for img in coco['images']:
            with Image.open(osp.join(coco_root, split, img['file_name'])) as im:
                assert im.size == (img['width'], img['height'])
                assert im.mode == 'RGB'


def test_coco_sizes_vary_and_include_odd(coco_root):
    coco = _load_json(osp.join(coco_root, 'annotations', 'instances_train.json'))
    sizes = {(img['height'], img['width']) for img in coco['images']}
    assert len(sizes) > 1
    assert any(h % 2 or w % 2 for h, w in sizes)
    assert all(64 <= h <= 131 and 64 <= w <= 131 for h, w in sizes)


def test_coco_annotations_describe_the_drawn_objects(coco_root):
    """pycocotools loads the file; each polygon's mask is the drawn object (IoU > 0.9
    with the strongly coloured pixels around it, after JPEG compression) and its area; the
    bbox is the polygon's extent and the object's colour is its class's colour."""
    from pycocotools.coco import COCO
    coco = COCO(osp.join(coco_root, 'annotations', 'instances_train.json'))
    assert sorted(coco.getCatIds()) == [1, 2, 3]
    colours = np.array(list(COLOURS.values()))
    for img_id in coco.getImgIds():
        info = coco.loadImgs(img_id)[0]
        pixels = np.asarray(Image.open(osp.join(coco_root, 'train', info['file_name'])))
        saturated = _saturated(pixels)
        anns = coco.loadAnns(coco.getAnnIds(imgIds=img_id))
        union = np.zeros_like(saturated)
        for ann in anns:
            mask = coco.annToMask(ann).astype(bool)
            union |= mask
            x, y, w, h = ann['bbox']
            polygon = np.array(ann['segmentation'][0]).reshape(-1, 2)
            np.testing.assert_allclose([x, y, x + w, y + h],
                                       [*polygon.min(0), *polygon.max(0)], atol=0.01)
            # objects are >= 2 px apart: a window around the box holds only this one
            x0, y0 = max(int(x) - 1, 0), max(int(y) - 1, 0)
            x1, y1 = int(np.ceil(x + w)) + 1, int(np.ceil(y + h)) + 1
            drawn, annotated = saturated[y0:y1, x0:x1], mask[y0:y1, x0:x1]
            iou = (drawn & annotated).sum() / (drawn | annotated).sum()
            assert iou > 0.9, (info['file_name'], ann['id'], iou)
            mean_colour = pixels[mask].mean(axis=0)
            nearest = np.argmin(((colours - mean_colour)**2).sum(axis=1))
            assert nearest == ann['category_id'] - 1
            assert ann['area'] == mask.sum()
        # nothing coloured outside the annotated objects
        assert (saturated & ~union).sum() <= 0.05 * saturated.sum()


@pytest.mark.parametrize('poly2mask', [False, True])
def test_mmdet_coco_dataset_loads_unchanged(coco_root, poly2mask):
    """The real mmdet CocoDataset + LoadAnnotations(with_mask) read the generated set;
    polygons arrive as PolygonMasks (or BitmapMasks with poly2mask=True)."""
    from mmdet.datasets import CocoDataset
    from mmdet.structures.mask import BitmapMasks, PolygonMasks
    from pycocotools.coco import COCO
    ann_file = osp.join(coco_root, 'annotations', 'instances_train.json')
    dataset = CocoDataset(
        data_root=coco_root,
        ann_file='annotations/instances_train.json',
        data_prefix=dict(img='train/'),
        metainfo=dict(classes=SHAPE_CLASSES),
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='mmdet.LoadAnnotations', with_bbox=True, with_mask=True,
                 poly2mask=poly2mask),
        ])
    coco = COCO(ann_file)
    assert len(dataset) == 8
    assert sum(len(dataset.get_data_info(i)['instances'])
               for i in range(len(dataset))) == len(coco.getAnnIds())
    for i in range(len(dataset)):
        results = dataset[i]
        img_id = results['img_id']
        info = coco.loadImgs(img_id)[0]
        anns = coco.loadAnns(coco.getAnnIds(imgIds=img_id))
        assert results['img'].shape == (info['height'], info['width'], 3)
        assert results['gt_bboxes_labels'].tolist() == [a['category_id'] - 1 for a in anns]
        expected_boxes = [[x, y, x + w, y + h] for x, y, w, h in (a['bbox'] for a in anns)]
        np.testing.assert_allclose(results['gt_bboxes'].tensor.numpy(), expected_boxes,
                                   atol=1e-3)
        assert not results['gt_ignore_flags'].any()
        masks = results['gt_masks']
        assert (masks.height, masks.width) == (info['height'], info['width'])
        if poly2mask:
            assert isinstance(masks, BitmapMasks)
            expected = np.stack([coco.annToMask(a) for a in anns])
            np.testing.assert_array_equal(masks.masks, expected)
        else:
            assert isinstance(masks, PolygonMasks)
            for polygons, ann in zip(masks.masks, anns):
                np.testing.assert_allclose(polygons[0], ann['segmentation'][0])


def test_mmdet_coco_metric_scores_ground_truth_as_perfect(coco_root):
    """The annotation file is complete for COCO evaluation: the ground truth, submitted
    as predictions, gets bbox and segm mAP 1.0 from mmdet's CocoMetric."""
    import torch
    from mmdet.evaluation import CocoMetric
    from pycocotools.coco import COCO
    ann_file = osp.join(coco_root, 'annotations', 'instances_val.json')
    coco = COCO(ann_file)
    metric = CocoMetric(ann_file=ann_file, metric=['bbox', 'segm'])
    metric.dataset_meta = dict(classes=SHAPE_CLASSES)
    for img_id in coco.getImgIds():
        info = coco.loadImgs(img_id)[0]
        anns = coco.loadAnns(coco.getAnnIds(imgIds=img_id))
        boxes = [[x, y, x + w, y + h] for x, y, w, h in (a['bbox'] for a in anns)]
        metric.process({}, [dict(
            img_id=img_id, ori_shape=(info['height'], info['width']),
            pred_instances=dict(
                bboxes=torch.tensor(boxes), scores=torch.ones(len(anns)),
                labels=torch.tensor([a['category_id'] - 1 for a in anns]),
                masks=torch.from_numpy(np.stack([coco.annToMask(a) for a in anns])).bool()))])
    results = metric.evaluate(size=len(coco.getImgIds()))
    assert results['coco/bbox_mAP'] == pytest.approx(1.0)
    assert results['coco/segm_mAP'] == pytest.approx(1.0)


def test_coco_writer_is_deterministic_and_validates(tmp_path):
    kwargs = dict(num_train=2, num_val=1, image_size=(48, 64), num_classes=5, ext='png')
    first = write_coco_dataset(str(tmp_path / 'a'), seed=3, **kwargs)
    second = write_coco_dataset(str(tmp_path / 'b'), seed=3, **kwargs)
    assert _load_json(first['train_ann_file']) == _load_json(second['train_ann_file'])
    a = np.asarray(Image.open(osp.join(first['train_img_dir'], '000001.png')))
    b = np.asarray(Image.open(osp.join(second['train_img_dir'], '000001.png')))
    np.testing.assert_array_equal(a, b)
    assert a.shape == (48, 64, 3)
    with pytest.raises(ValueError, match='num_classes'):
        write_coco_dataset(str(tmp_path / 'c'), num_classes=len(SHAPES) + 1)
    with pytest.raises(ValueError, match='image_size'):
        write_coco_dataset(str(tmp_path / 'c'), image_size=(8, 8))


# --------------------------------------------------------------------------- CIFAR-10


def test_cifar10_pickles_have_the_official_layout(cifar10_root):
    folder = osp.join(cifar10_root, 'cifar-10-batches-py')
    labels = []
    for i in range(1, 6):
        with open(osp.join(folder, f'data_batch_{i}'), 'rb') as f:
            entry = pickle.load(f, encoding='latin1')  # as mmpretrain and torchvision do
        assert entry['data'].dtype == np.uint8 and entry['data'].shape == (8, 3072)
        assert entry['batch_label'] == f'training batch {i} of 5'
        assert len(entry['filenames']) == len(entry['labels']) == 8
        labels += entry['labels']
    assert np.bincount(labels).tolist() == [4] * 10
    with open(osp.join(folder, 'batches.meta'), 'rb') as f:
        assert pickle.load(f, encoding='latin1')['label_names'] == list(CIFAR10_CLASSES)


def test_cifar10_images_show_their_class(cifar10_root):
    """Class k is a fixed shape in a fixed colour: the mean colour of an image's strongly
    coloured pixels is nearest to its class's colour."""
    from mmpretrain.datasets import CIFAR10
    dataset = _real_cifar10(CIFAR10, cifar10_root, 'test')
    colours = np.array(list(COLOURS.values()))
    names = classification_class_names(10)
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        img = info['img']
        colour = img[_saturated(img)].mean(axis=0)
        nearest = list(COLOURS)[np.argmin(((colours - colour)**2).sum(axis=1))]
        assert names[info['gt_label']].startswith(nearest)


def _real_cifar10(cls, root, split):
    """mmpretrain's CIFAR10 on a generated set: the md5 table, which generated files
    cannot match, cleared on the instance (what ``mmsase.CIFAR10(verify_md5=False)``
    does); loading itself is mmpretrain's code."""
    dataset = cls(data_root=root, split=split, download=False, lazy_init=True)
    dataset.train_list = [[name, None] for name, _ in dataset.train_list]
    dataset.test_list = [[name, None] for name, _ in dataset.test_list]
    dataset.full_init()
    return dataset


def test_mmpretrain_cifar10_loads_generated_batches(cifar10_root):
    from mmpretrain.datasets import CIFAR10
    train = _real_cifar10(CIFAR10, cifar10_root, 'train')
    test = _real_cifar10(CIFAR10, cifar10_root, 'test')
    assert (len(train), len(test)) == (40, 20)
    info = train.get_data_info(0)
    assert info['img'].shape == (32, 32, 3) and info['img'].dtype == np.uint8
    assert np.bincount(train.get_gt_labels()).tolist() == [4] * 10
    assert train.CLASSES == CIFAR10_CLASSES
    # Untouched, it refuses files whose md5 differs from the official release:
    with pytest.raises(RuntimeError, match='Cannot find CIFAR10'):
        CIFAR10(data_root=cifar10_root, split='train', download=False)


def test_mmsase_cifar10_gives_the_same_samples(cifar10_root):
    from mmpretrain.datasets import CIFAR10

    from mmsase.registry import DATASETS
    ours = DATASETS.build(dict(type='mmsase.CIFAR10', data_root=cifar10_root,
                               split='train', verify_md5=False))
    real = _real_cifar10(CIFAR10, cifar10_root, 'train')
    assert len(ours) == len(real) == 40
    for i in (0, 17, 39):
        np.testing.assert_array_equal(ours.get_data_info(i)['img'],
                                      real.get_data_info(i)['img'])
        assert ours.get_data_info(i)['gt_label'] == real.get_data_info(i)['gt_label']


# --------------------------------------------------------------------------- ImageNet


def test_imagenet_layout(imagenet_root):
    with open(osp.join(imagenet_root, 'meta', 'classes.txt')) as f:
        assert f.read().splitlines() == classification_class_names(4)
    with open(osp.join(imagenet_root, 'meta', 'train.txt')) as f:
        lines = f.read().splitlines()
    assert len(lines) == 16
    assert lines[0] == 'n00000000/n00000000_0.JPEG 0'
    for line in lines:
        path, label = line.rsplit(' ', 1)
        assert path.startswith(f'n{int(label):08d}/')
        with Image.open(osp.join(imagenet_root, 'train', path)) as im:
            assert im.size == (64, 64) and im.format == 'JPEG'


@pytest.mark.parametrize('split,num', [('train', 16), ('val', 8)])
def test_mmpretrain_imagenet_loads_unchanged(imagenet_root, split, num):
    from mmpretrain.datasets import ImageNet
    dataset = ImageNet(
        data_root=imagenet_root,
        split=split,
        classes=osp.join(imagenet_root, 'meta', 'classes.txt'),
        pipeline=[dict(type='LoadImageFromFile'), dict(type='mmpretrain.PackInputs')])
    assert dataset.ann_file == osp.join(imagenet_root, 'meta', f'{split}.txt')
    assert len(dataset) == num
    assert dataset.CLASSES == tuple(classification_class_names(4))
    assert np.bincount(dataset.get_gt_labels()).tolist() == [num // 4] * 4
    sample = dataset[num - 1]
    assert tuple(sample['inputs'].shape) == (3, 64, 64)
    assert sample['data_samples'].gt_label.item() == 3


def test_mmpretrain_custom_dataset_scans_folders_with_the_same_labels(imagenet_root):
    from mmpretrain.datasets import CustomDataset
    scanned = CustomDataset(data_root=imagenet_root, data_prefix='train')
    listed = CustomDataset(data_root=imagenet_root, data_prefix='train',
                           ann_file='meta/train.txt', classes=scanned.CLASSES)
    assert scanned.CLASSES == tuple(f'n{k:08d}' for k in range(4))
    assert [(d['img_path'], d['gt_label']) for d in scanned.load_data_list()] == \
        [(d['img_path'], d['gt_label']) for d in listed.load_data_list()]


# --------------------------------------------------------------------------- CLI


def test_generate_data_cli(tmp_path, capsys):
    main = load_tool('tools/generate_data.py').main
    main(['coco', str(tmp_path / 'coco'), '--num-train', '2', '--num-val', '1',
          '--image-size', '40', '48', '--max-image-size', '41', '49'])
    assert 'instances_train.json' in capsys.readouterr().out
    coco = _load_json(tmp_path / 'coco' / 'annotations' / 'instances_train.json')
    assert all(40 <= i['height'] <= 41 and 48 <= i['width'] <= 49 for i in coco['images'])
    main(['cifar10', str(tmp_path / 'cifar'), '--num-train', '5', '--num-val', '2'])
    assert 'verify_md5=False' in capsys.readouterr().out
    assert osp.isfile(tmp_path / 'cifar' / 'cifar-10-batches-py' / 'test_batch')
    main(['imagenet', str(tmp_path / 'imnet'), '--num-train', '1', '--num-val', '1',
          '--num-classes', '2', '--image-size', '32', '32'])
    assert 'classes.txt' in capsys.readouterr().out
    with open(tmp_path / 'imnet' / 'meta' / 'val.txt') as f:
        assert len(f.read().splitlines()) == 2
    with pytest.raises(SystemExit):
        main(['cifar10', str(tmp_path / 'x'), '--image-size', '8', '8'])
