# ResNet-101 + CBAM (Woo et al., ECCV 2018) after the last BN of every bottleneck, the authors'
# module (Jongchan/attention-module); the SASE paper's ImageNet settings (spec §5).
_base_ = '../resnet/resnet101_in1k.py'

model = dict(backbone=dict(attention=dict(type='mmsase.CBAM')))
