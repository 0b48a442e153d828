# SE-ResNet-50 (reduction 16) with the same settings: the SE row of the paper's tables.
_base_ = './resnet50_in1k.py'

model = dict(backbone=dict(attention=dict(type='mmsase.SE', reduction=16)))
