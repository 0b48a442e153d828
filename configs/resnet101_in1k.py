_base_ = './resnet50_in1k.py'

model = dict(backbone=dict(depth=101))
