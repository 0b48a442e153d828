# ResNet-50 + ECA (Wang et al., CVPR 2020) after the last BN of every bottleneck, the authors'
# module (BangguWu/ECANet); the SASE paper's ImageNet settings (spec §5).
_base_ = '../resnet/resnet50_in1k.py'

# One kernel size per stage, those of the authors' checkpoint eca_resnet50_k3557 (their --ksize
# 3557), not the paper's formula (which gives 5, 5, 5, 7).
model = dict(
    backbone=dict(
        attention=dict(type='mmsase.ECA', stage_args=dict(kernel_size=(3, 5, 5, 7)))))
