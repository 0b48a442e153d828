# CIFAR ResNet-164 (bottleneck, 9n+2 with n = 18) on CIFAR-10 with the SEM paper's recipe
# (Qrange-group/SEM run.py and README): SGD lr 0.1, momentum 0.9, weight decay 1e-4, batch 128,
# 164 epochs, lr x 0.1 at epochs 81 and 122; RandomCrop(32, padding 4) + horizontal flip;
# normalised by the CIFAR-10 mean/std the authors use. The base of configs/sem/*: the + SE and
# + SEM rows and the CIFAR-100 twins change only what differs. 1,704,154 parameters.
_base_ = ['mmpretrain::_base_/default_runtime.py']
custom_imports = dict(imports=['mmsase.models', 'mmsase.datasets', 'mmsase.engine'],
                      allow_failed_imports=False)

num_classes = 10
model = dict(
    type='ImageClassifier',
    backbone=dict(type='mmsase.CifarResNet', depth=164, block='bottleneck'),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=num_classes,
        in_channels=256,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, 5)))
data_preprocessor = dict(
    type='ClsDataPreprocessor',
    num_classes=num_classes,
    mean=[125.307, 122.961, 113.8575],  # (0.4914, 0.4822, 0.4465) x 255
    std=[51.5865, 50.847, 51.255],  # (0.2023, 0.1994, 0.2010) x 255
    to_rgb=False)  # mmpretrain's CIFAR sets are RGB already

dataset_type = 'mmsase.CIFAR10'
data_root = 'data/cifar10'
train_pipeline = [
    dict(type='RandomCrop', crop_size=32, padding=4),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [dict(type='PackInputs')]
train_dataloader = dict(
    batch_size=128,
    num_workers=2,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type=dataset_type, data_root=data_root, split='train',
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=100,
    num_workers=2,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, split='test',
                 pipeline=test_pipeline))
val_evaluator = dict(type='Accuracy', topk=(1, 5))
test_dataloader = val_dataloader
test_evaluator = val_evaluator

max_epochs = 164
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=1e-4))
param_scheduler = dict(type='MultiStepLR', by_epoch=True, milestones=[81, 122], gamma=0.1)
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=1)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=128)
# the authors' run.py tests every epoch and prints the best test accuracy (best_acc)
default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=2, save_best='auto'))
