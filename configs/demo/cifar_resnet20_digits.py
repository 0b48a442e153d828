# CPU demo: plain CIFAR ResNet-20 on the embedded digits (a couple of minutes on 2 cores).
# The SASE and SE variants below differ only in `attention`.
_base_ = [
    'mmpretrain::_base_/default_runtime.py',
    '../_base_/digits32_bs64.py',
]
custom_imports = dict(imports=['mmsase.models', 'mmsase.datasets', 'mmsase.engine'],
                      allow_failed_imports=False)

model = dict(
    type='ImageClassifier',
    backbone=dict(type='mmsase.CifarResNet', depth=20),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=10,
        in_channels=64,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, )))

max_epochs = 6
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=5e-4))
param_scheduler = dict(type='CosineAnnealingLR', T_max=max_epochs, by_epoch=True,
                       eta_min=1e-3)
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=max_epochs)
val_cfg = dict()
test_cfg = dict()
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=10),
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=2))
randomness = dict(seed=0, deterministic=False)
