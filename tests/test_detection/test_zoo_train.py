"""``python tools/train.py configs/<block>/faster_rcnn_r50_<block>_1x_coco.py`` trains on data
laid out as COCO, for one block of each placement (after the last BN, in the last block of a
stage, before every conv, in place of BN). The shipped configs run as they are, with the
command-line overrides a user with a small set would give: the data root, the three classes,
a smaller input scale, one epoch, and no ImageNet checkpoint (not trained here)."""
import os.path as osp

import pytest

from .helpers import run_tool


def coco_overrides(data_root: str) -> list:
    root = data_root.rstrip('/') + '/'
    return [
        f'train_dataloader.dataset.data_root={root}',
        'train_dataloader.dataset.ann_file=annotations/instances_train.json',
        'train_dataloader.dataset.data_prefix.img=train/',
        'train_dataloader.dataset.metainfo.classes=[circle,square,triangle]',
        'train_dataloader.dataset.pipeline.2.scale=(160,128)',
        'train_dataloader.batch_size=4', 'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False',
        'model.backbone.init_cfg=None', 'train_cfg.max_epochs=1',
        'val_cfg=None', 'val_dataloader=None', 'val_evaluator=None',
        'test_cfg=None', 'test_dataloader=None', 'test_evaluator=None',
        'default_hooks.logger.interval=1',
    ]


@pytest.mark.slow
@pytest.mark.parametrize('block', ['cbam', 'gsop', 'gct', 'iebn'])
def test_faster_rcnn_of_a_zoo_row_trains_on_coco_layout(block, coco_root, tmp_path):
    config = osp.join('configs', block, f'faster_rcnn_r50_{block}_1x_coco.py')
    run_tool('tools/train.py', config, '--work-dir', str(tmp_path), '--cfg-options',
             *coco_overrides(coco_root))
    assert osp.isfile(tmp_path / 'epoch_1.pth')
    log = next(tmp_path.glob('*/*.log')).read_text()
    assert 'loss_rpn_cls' in log and 'loss_bbox' in log and 'Epoch(train) [1][2/2]' in log
