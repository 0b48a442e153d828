# SASE search (spec §4): DARTS over the six-edge attention DAG on CIFAR-10 with ResNet-20.
# Weights train on one half of CIFAR-10's training set, the architecture α (one 6 x 7 tensor
# shared by every block) on the other half. 50 epochs, batch 128.
# Weights: SGD lr 0.025 -> 1e-4 cosine, momentum 0.9, wd 5e-4. α: Adam lr 3e-4 (constant),
# betas (0.5, 0.999), wd 1e-3. unroll=True is second-order DARTS; False is first order.
# Every epoch writes genotype.json and alpha_evolution.png into the work dir.
_base_ = ['mmpretrain::_base_/default_runtime.py']
custom_imports = dict(imports=['mmsase.models', 'mmsase.datasets', 'mmsase.engine'],
                      allow_failed_imports=False)

max_epochs = 50
batch_size = 128
split_seed = 0

model = dict(
    type='mmsase.SASESearch',
    unroll=True,
    architecture=dict(
        type='ImageClassifier',
        backbone=dict(type='mmsase.CifarResNet', depth=20,
                      attention=dict(type='SASESupernet')),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=10, in_channels=64,
                  loss=dict(type='CrossEntropyLoss', loss_weight=1.0)),
        data_preprocessor=dict(
            type='ClsDataPreprocessor',
            num_classes=10,
            mean=[125.307, 122.961, 113.8575],
            std=[51.5865, 50.847, 51.255],
            to_rgb=False)))

cifar10 = dict(
    type='mmsase.CIFAR10',
    data_root='data/cifar10',
    split='train',
    pipeline=[
        dict(type='RandomCrop', crop_size=32, padding=4),
        dict(type='RandomFlip', prob=0.5, direction='horizontal'),
        dict(type='PackInputs'),
    ])
train_dataloader = dict(  # the weight half
    batch_size=batch_size,
    num_workers=2,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type='mmsase.HalfSplit', dataset=cifar10, part=0, seed=split_seed))
arch_dataloader = dict(  # the architecture half
    batch_size=batch_size,
    num_workers=2,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type='mmsase.HalfSplit', dataset=cifar10, part=1, seed=split_seed))
val_dataloader = dict(
    batch_size=256,
    num_workers=2,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='mmsase.CIFAR10', data_root='data/cifar10', split='test',
                 pipeline=[dict(type='PackInputs')]))
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_dataloader = val_dataloader
test_evaluator = val_evaluator

train_cfg = dict(type='mmsase.BilevelEpochBasedTrainLoop', max_epochs=max_epochs,
                 val_interval=5, arch_dataloader=arch_dataloader)
val_cfg = dict()
test_cfg = dict()

optim_wrapper = dict(
    constructor='mmsase.SearchOptimWrapperConstructor',
    weights=dict(optimizer=dict(type='SGD', lr=0.025, momentum=0.9, weight_decay=5e-4)),
    architecture=dict(
        optimizer=dict(type='Adam', lr=3e-4, betas=(0.5, 0.999), weight_decay=1e-3)))
param_scheduler = dict(
    weights=[dict(type='CosineAnnealingLR', T_max=max_epochs, eta_min=1e-4, by_epoch=True,
                  begin=0, end=max_epochs)],
    architecture=[])  # α's lr is not annealed

custom_hooks = [dict(type='mmsase.GenotypeLoggerHook'), dict(type='mmsase.AlphaPlotHook')]
model_wrapper_cfg = dict(type='mmsase.SearchDataParallel')  # used when distributed
default_hooks = dict(checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=3))
randomness = dict(seed=0, deterministic=False)  # a fixed seed makes --resume exact
