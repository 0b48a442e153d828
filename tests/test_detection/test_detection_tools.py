"""Faster / Mask R-CNN with SASE backbones: train, test (COCO mAP by pycocotools),
--show-dir, odd image sizes and batch size 1, on the generated COCO-format shapes."""
import json
import os
import os.path as osp
import re

import pytest

from .helpers import FASTER, MASK, coco_options, run_tool

pytestmark = pytest.mark.slow

# 8 training images (sizes 64..131, odd ones included) at batch 4 = 2 iterations.
SHORT = ['train_cfg.max_epochs=1', 'train_cfg.val_interval=1']


@pytest.fixture(scope='module')
def mask_run(coco_root, tmp_path_factory):
    work_dir = str(tmp_path_factory.mktemp('mask_rcnn'))
    out = run_tool('tools/train.py', MASK, '--work-dir', work_dir, '--cfg-options',
                   *SHORT, *coco_options(coco_root))
    return work_dir, out


def test_mask_rcnn_trains_and_validates(mask_run):
    work_dir, out = mask_run
    log = out.stdout + out.stderr
    assert osp.isfile(osp.join(work_dir, 'epoch_1.pth'))
    assert re.search(r'loss_mask: [\d.]+', log)
    assert re.search(r'coco/segm_mAP: [\d.]+', log) and re.search(r'coco/bbox_mAP: [\d.]+', log)


def test_test_tool_prints_bbox_and_segm_map_and_draws(mask_run, coco_root, tmp_path):
    work_dir, _ = mask_run
    show_dir = 'drawn'
    out = run_tool('tools/test.py', MASK, osp.join(work_dir, 'epoch_1.pth'), '--work-dir',
                   str(tmp_path), '--show-dir', show_dir, '--cfg-options',
                   *coco_options(coco_root))
    for metric in ('coco/bbox_mAP', 'coco/segm_mAP', 'coco/bbox_mAP_50', 'coco/segm_mAP_50'):
        assert re.search(rf'^{metric}: -?[\d.]+$', out.stdout, re.M), (metric, out.stdout)
    drawn = [f for _, _, files in os.walk(tmp_path) for f in files if f.endswith(('.jpg', '.png'))]
    with open(osp.join(coco_root, 'annotations/instances_val.json')) as f:
        assert len(drawn) == len(json.load(f)['images'])


def test_faster_rcnn_batch_size_one_and_resume(coco_root, tmp_path):
    work_dir = str(tmp_path)
    options = coco_options(coco_root) + ['train_dataloader.batch_size=1',
                                         'train_dataloader.dataset.indices=3']
    run_tool('tools/train.py', FASTER, '--work-dir', work_dir, '--cfg-options',
             'train_cfg.max_epochs=1', 'train_cfg.val_interval=2', *options)
    out = run_tool('tools/train.py', FASTER, '--work-dir', work_dir, '--resume',
                   '--cfg-options', 'train_cfg.max_epochs=2', 'train_cfg.val_interval=2',
                   *options)
    log = out.stdout + out.stderr
    assert 'resumed epoch: 1, iter: 3' in log
    assert re.search(r'coco/bbox_mAP: [\d.]+', log)
