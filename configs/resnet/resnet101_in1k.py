# Plain ResNet-101 on ImageNet-1k, the settings of resnet50_in1k.py (spec §5).
_base_ = './resnet50_in1k.py'

model = dict(backbone=dict(depth=101))
