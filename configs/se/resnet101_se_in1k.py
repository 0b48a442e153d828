# ResNet-101 + SE (Hu et al., CVPR 2018) after the last BN of every bottleneck, reduction 16 (C
# // 16 hidden units, as SENet and mmpretrain's SEResNet); the SASE paper's ImageNet settings
# (spec §5).
_base_ = '../resnet/resnet101_in1k.py'

model = dict(backbone=dict(attention=dict(type='mmsase.SE', reduction=16)))
