_base_ = './resnet101_in1k.py'

model = dict(backbone=dict(attention=dict(type='mmsase.SASE', genotype=None)))
