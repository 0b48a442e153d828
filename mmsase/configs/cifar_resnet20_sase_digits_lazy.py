# New-style twin of configs/demo/cifar_resnet20_sase_digits.py: CPU demo, a CIFAR ResNet-20
# with the searched SASE block on the embedded digits (a couple of minutes on 2 cores).
# Another genotype: --cfg-options model.backbone.attention.genotype=path/genotype.json
from mmengine.config import read_base
from mmengine.optim import CosineAnnealingLR
from mmpretrain.models import (CrossEntropyLoss, GlobalAveragePooling, ImageClassifier,
                               LinearClsHead)
from torch.optim import SGD

from mmsase.models.backbones import CifarResNet
from mmsase.models.plugins import SASE

with read_base():
    from ._base_.datasets.digits32 import *
    from ._base_.mmpretrain_runtime import *

model = dict(
    type=ImageClassifier,
    backbone=dict(type=CifarResNet, depth=20, attention=dict(type=SASE, genotype=None)),
    neck=dict(type=GlobalAveragePooling),
    head=dict(
        type=LinearClsHead,
        num_classes=10,
        in_channels=64,
        loss=dict(type=CrossEntropyLoss, loss_weight=1.0),
        topk=(1, )))

max_epochs = 6
optim_wrapper = dict(optimizer=dict(type=SGD, lr=0.1, momentum=0.9, weight_decay=5e-4))
param_scheduler = dict(type=CosineAnnealingLR, T_max=max_epochs, by_epoch=True, eta_min=1e-3)
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=max_epochs)
val_cfg = dict()
test_cfg = dict()
default_hooks.logger.interval = 10
default_hooks.checkpoint.max_keep_ckpts = 2
randomness = dict(seed=0, deterministic=False)
