# New-style twin of configs/sase/faster_rcnn_r50_sase_1x_coco.py: Faster R-CNN R50-FPN + SASE
# (the searched block after conv3/bn3 of every bottleneck), 1x, with the SASE paper's COCO
# settings: total batch 8 (4 GPUs x 2), lr 0.01, lr x0.1 at epochs 8 and 11. The backbone is
# mmsase's AttentionResNet (mmpretrain's ResNet, taking mmdet's backbone keys) and starts from
# resnet50_sase_in1k's ImageNet checkpoint: train it first, or point
# model.backbone.init_cfg.checkpoint at your own file.
# Another genotype: --cfg-options model.backbone.attention.genotype=path/genotype.json
from mmengine.config import read_base

from mmsase.datasets import CocoDataset as CheckedCocoDataset
from mmsase.models.backbones import AttentionResNet
from mmsase.models.plugins import SASE

with read_base():
    from ._base_.datasets.coco_detection import *
    from ._base_.mmdet_runtime import *
    from ._base_.models.faster_rcnn_r50_fpn import *
    from ._base_.schedules.schedule_1x import *

imagenet_checkpoint = 'work_dirs/resnet50_sase_in1k/epoch_100.pth'
model.backbone.update(
    type=AttentionResNet,
    attention=dict(type=SASE, genotype=None),
    init_cfg=dict(type='Pretrained', prefix='backbone.', checkpoint=imagenet_checkpoint))

train_dataloader.batch_size = 2  # x 4 GPUs = 8
# mmsase's CocoDataset is mmdet's plus checks that name a missing data root or a broken
# annotation entry before training starts.
train_dataloader.dataset.type = CheckedCocoDataset
val_dataloader.dataset.type = CheckedCocoDataset
test_dataloader.dataset.type = CheckedCocoDataset
optim_wrapper.optimizer.lr = 0.01
auto_scale_lr.base_batch_size = 8
