# EAN step 1 on CIFAR-10: the bottleneck CIFAR ResNet-164 (3 stages of 18 blocks, 54 bits)
# whose blocks share one SE (r = 16) per stage, trained under a uniformly random connection code
# per iteration (RandomConnectionCodeHook) and validated with no block plugged, on the
# configs/sem recipe (SGD lr 0.1, batch 128, 164 epochs, lr x0.1 at 81 and 122, wd 1e-4).
# The authors publish no CIFAR code; as on ImageNet, part of the training set is held out for
# the search's rewards (tools/ean_search.py, `ean_search`): CIFAR-10's 50 000 training images
# cut into 10 seeded parts, the supernet trains on parts 1-9 and codes are rewarded on part 0.
_base_ = '../sem/resnet164_cifar10.py'

model = dict(
    backbone=dict(
        attention=dict(type='mmsase.SE', reduction=16),
        attention_shared=True))
custom_hooks = [dict(type='mmsase.RandomConnectionCodeHook', val_code='none')]
model_wrapper_cfg = dict(type='MMDistributedDataParallel', find_unused_parameters=True)

_split = dict(type='mmsase.SplitDataset', num_parts=10, seed=0)
_cifar10 = dict(type='mmsase.CIFAR10', data_root='data/cifar10', split='train')
train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='ConcatDataset',
        datasets=[
            dict(_split, part=part, dataset=dict(_cifar10, pipeline={{_base_.train_pipeline}}))
            for part in range(1, 10)
        ]))
ean_search = dict(
    heldout_dataloader=dict(
        batch_size=500,
        num_workers=2,
        dataset=dict(_split, part=0, dataset=dict(_cifar10, pipeline={{_base_.test_pipeline}})),
        sampler=dict(type='DefaultSampler', shuffle=False)))
