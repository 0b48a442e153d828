# ResNet-101 + SRM (Lee, Kim & Nam, ICCV 2019) after the last BN of every bottleneck, the
# authors' module (hyunjaelee410/style-based-recalibration-module); the SASE paper's ImageNet
# settings (spec §5).
_base_ = '../resnet/resnet101_in1k.py'

model = dict(backbone=dict(attention=dict(type='mmsase.SRM')))
# The authors train SRM's parameters (cfc and its BN) without weight decay (imagenet.py);
# custom_keys match a substring of the parameter name: '.srm.' is every parameter
# of an SRM block and nothing else.
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={'.srm.': dict(decay_mult=0.0)}))
