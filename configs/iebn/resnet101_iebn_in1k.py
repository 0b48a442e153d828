# ResNet-101 + IEBN (Liang et al., AAAI 2020) in place of the stem BN and bn1-bn3 of every
# bottleneck (the shortcut BN stays a BN), the authors' module and placement (gbup-group/IEBN);
# the SASE paper's ImageNet settings (spec §5).
_base_ = '../resnet/resnet101_in1k.py'

model = dict(backbone=dict(attention=dict(type='mmsase.IEBN')))
