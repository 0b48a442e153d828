# ResNet-101 + EANorm (the normalisation-guided attention of EAN, Li, Li & Wen, AAAI 2024: the
# "EAN" rows of the SASE paper) after the last BN of every bottleneck, 16 groups, the module of
# Lihahaah/EAN ean_module.py (which has no placement: SE's); the SASE paper's ImageNet settings
# (spec §5).
_base_ = '../resnet/resnet101_in1k.py'

model = dict(backbone=dict(attention=dict(type='mmsase.EANorm', groups=16)))
