# ResNet-50 + GCT (Gated Channel Transformation, Yang et al., CVPR 2020) before every
# convolution: the stem conv, conv1-conv3 of every bottleneck and the downsample conv, the
# authors' module and placement (z-x-yang/GCT, PyTorch/); the SASE paper's ImageNet settings
# (spec §5).
# The authors' ResNet strides in the first 1x1 conv of a bottleneck (MSRA style): style='caffe'
# in mmpretrain/mmdet terms (only the stride moves; the input normalisation stays).
_base_ = '../resnet/resnet50_in1k.py'

model = dict(backbone=dict(style='caffe', attention=dict(type='mmsase.GCT')))
# The authors' main.py trains GCT's β without weight decay; custom_keys match a substring
# of the parameter name, and '.beta' is in GCT's β only.
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={'.beta': dict(decay_mult=0.0)}))
