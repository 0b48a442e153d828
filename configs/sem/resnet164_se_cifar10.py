# CIFAR ResNet-164 + SE after bn3 of every bottleneck (the SE baseline of the SEM paper), CIFAR-10.
# SENet's hidden width C // 16 (4/8/16 for C = 64/128/256; mmsase.SE's default divisor=1);
# mmpretrain's SELayer and timm's SEModule round it to a multiple of 8 (8 at C = 64).
# 1,906,258 parameters (1,915,546 with the rounding to 8).
_base_ = './resnet164_cifar10.py'
model = dict(backbone=dict(attention=dict(type='mmsase.SE', reduction=16)))
