# New-style twin of configs/sase/resnet50_sase_in1k.py: ResNet-50 + SASE (the searched block
# after the last BN of every bottleneck) on ImageNet-1k with the SASE paper's transfer settings:
# 100 epochs, total batch 128 (4 GPUs x 32), SGD lr 0.05 cosine to 0, momentum 0.9, wd 1e-4.
# Another genotype: --cfg-options model.backbone.attention.genotype=path/genotype.json
from mmengine.config import read_base
from mmengine.optim import CosineAnnealingLR
from mmpretrain.models import (CrossEntropyLoss, GlobalAveragePooling, ImageClassifier,
                               LinearClsHead)
from torch.optim import SGD

from mmsase.models.backbones import AttentionResNet
from mmsase.models.plugins import SASE

with read_base():
    from ._base_.datasets.imagenet_bs32 import *
    from ._base_.mmpretrain_runtime import *

model = dict(
    type=ImageClassifier,
    backbone=dict(
        type=AttentionResNet,
        depth=50,
        num_stages=4,
        out_indices=(3, ),
        style='pytorch',
        attention=dict(type=SASE, genotype=None)),
    neck=dict(type=GlobalAveragePooling),
    head=dict(
        type=LinearClsHead,
        num_classes=1000,
        in_channels=2048,
        loss=dict(type=CrossEntropyLoss, loss_weight=1.0),
        topk=(1, 5)))

train_dataloader.batch_size = 32  # x 4 GPUs = 128
optim_wrapper = dict(optimizer=dict(type=SGD, lr=0.05, momentum=0.9, weight_decay=1e-4))
param_scheduler = dict(
    type=CosineAnnealingLR, T_max=100, eta_min=0.0, by_epoch=True, begin=0, end=100)
train_cfg = dict(by_epoch=True, max_epochs=100, val_interval=1)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=128)
