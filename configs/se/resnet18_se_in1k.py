# ResNet-18 + SE (Hu et al., CVPR 2018) after bn2 of every basic block, reduction 16 (C // 16
# hidden units); the recipe of resnet18_in1k.py.
_base_ = '../resnet/resnet18_in1k.py'

model = dict(backbone=dict(attention=dict(type='mmsase.SE', reduction=16)))
