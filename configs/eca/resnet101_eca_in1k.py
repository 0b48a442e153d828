# ResNet-101 + ECA (Wang et al., CVPR 2020) after the last BN of every bottleneck, the authors'
# module (BangguWu/ECANet); the SASE paper's ImageNet settings (spec §5).
_base_ = '../resnet/resnet101_in1k.py'

# One kernel size per stage, those of the authors' checkpoint eca_resnet101_k3357 (their --ksize
# 3357).
model = dict(
    backbone=dict(
        attention=dict(type='mmsase.ECA', stage_args=dict(kernel_size=(3, 3, 5, 7)))))
