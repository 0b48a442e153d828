# EAN step 3 on CIFAR-10: the bottleneck CIFAR ResNet-164 with one SE (r = 16) per stage shared
# by the blocks of a searched code, retrained from scratch on the configs/sem recipe. Pass the
# search's code: `--connection-code work_dirs/<search>/best_code.json`; without it every block
# is plugged (the all-plugged reference of the comparison).
_base_ = '../sem/resnet164_cifar10.py'

model = dict(
    backbone=dict(
        attention=dict(type='mmsase.SE', reduction=16),
        attention_shared=True,
        connection_code=None))
model_wrapper_cfg = dict(type='MMDistributedDataParallel', find_unused_parameters=True)
