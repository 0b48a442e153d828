# EAN step 1 on CIFAR-10: the bottleneck CIFAR ResNet-164 (3 stages of 18 blocks, 54 bits)
# whose blocks share one SE (r = 16) per stage, trained under a uniformly random connection code
# per iteration (RandomConnectionCodeHook) and validated with no block plugged, on the
# configs/sem recipe (SGD lr 0.1, batch 128, 164 epochs, lr x0.1 at 81 and 122, wd 1e-4).
# The authors publish no CIFAR code; the controller's search rewards on a seeded held-out part
# of the training set, which train_dataloader should then leave out.
_base_ = '../sem/resnet164_cifar10.py'

model = dict(
    backbone=dict(
        attention=dict(type='mmsase.SE', reduction=16),
        attention_shared=True))
custom_hooks = [dict(type='mmsase.RandomConnectionCodeHook', val_code='none')]
model_wrapper_cfg = dict(type='MMDistributedDataParallel', find_unused_parameters=True)
