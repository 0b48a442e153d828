"""Command-line overrides that point the detection demo configs at a generated set."""
import os.path as osp

from _tools import ROOT, run_tool  # noqa: F401  (re-exported for the detection tests)

FASTER = osp.join(ROOT, 'configs/demo/faster_rcnn_r50_sase_synth.py')
MASK = osp.join(ROOT, 'configs/demo/mask_rcnn_r50_sase_synth.py')


def coco_options(data_root: str) -> list:
    data_root = data_root.rstrip('/') + '/'
    val_ann = data_root + 'annotations/instances_val.json'
    return [
        f'train_dataloader.dataset.data_root={data_root}',
        f'val_dataloader.dataset.data_root={data_root}',
        f'test_dataloader.dataset.data_root={data_root}',
        f'val_evaluator.ann_file={val_ann}',
        f'test_evaluator.ann_file={val_ann}',
        'default_hooks.logger.interval=1',
    ]

