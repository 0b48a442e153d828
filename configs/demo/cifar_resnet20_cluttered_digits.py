# CPU demo: plain CIFAR ResNet-20 on the cluttered digits (mmsase.ClutteredDigits with its
# defaults, the data set of ../_base_/cluttered_digits32_bs64.py), with the 6-epoch recipe of
# cifar_resnet20_digits.py unchanged: about 1.5 minutes on 2 idle CPU cores (4x the clean
# digits' images), top-1 88-90 % against 98.3 % on the clean digits. For an attention block,
# inherit this config and set `model = dict(backbone=dict(attention=...))`, as
# cifar_resnet20_se_digits.py does.
_base_ = './cifar_resnet20_digits.py'
train_dataloader = dict(dataset=dict(type='mmsase.ClutteredDigits'))
val_dataloader = dict(dataset=dict(type='mmsase.ClutteredDigits'))
test_dataloader = val_dataloader
