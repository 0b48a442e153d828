# ResNet-101 + GSoP (GSoP-Net1, Gao et al., CVPR 2019) in the last bottleneck of each stage,
# after its last BN, the authors' module
# (ZilinGao/Global-Second-order-Pooling-Convolutional-Networks); the SASE paper's ImageNet
# settings (spec §5).
# As the authors: d = 128, and the 1x1 reduction conv has stride 2 in stage 1 only
# (reduction_stride). The authors train 95 epochs; the SASE paper's rows use its own 100-epoch
# settings, kept here.
# GSoP-Net1 keeps stage 4 at stride 1 (a 14x14 output): strides=(1, 2, 2, 1).
_base_ = '../resnet/resnet101_in1k.py'

model = dict(
    backbone=dict(
        strides=(1, 2, 2, 1),
        attention=dict(type='mmsase.GSoP', stage_args=dict(reduction_stride=(2, 1, 1, 1)))))
