# ResNet-50 + MCA (Jiang et al., AAAI 2024), the authors' MomentAttention_v1 (moment='std': mean
# and standard deviation; CSDLLab/MCA moment.py), after the last BN of every bottleneck (the
# authors' code has no placement: SE's); the SASE paper's ImageNet settings (spec §5).
_base_ = '../resnet/resnet50_in1k.py'

model = dict(backbone=dict(attention=dict(type='mmsase.MCA', moment='std')))
