_base_ = './cifar_resnet20_digits.py'
model = dict(backbone=dict(attention=dict(type='mmsase.SE', reduction=16)))
