# CIFAR ResNet-164 + SE (SENet's C // 16), CIFAR-100: 1,929,388 parameters.
_base_ = './resnet164_cifar100.py'
model = dict(backbone=dict(attention=dict(type='mmsase.SE', reduction=16)))
