# ResNet-18 + ECA (Wang et al., CVPR 2020) after bn2 of every basic block, the authors' module
# (BangguWu/ECANet); the recipe of resnet18_in1k.py.
_base_ = '../resnet/resnet18_in1k.py'

# One kernel size per stage: eca_resnet18's default k_size=[3, 3, 3, 3] in the authors'
# eca_resnet.py (the paper's formula would give 3, 5, 5, 5 for 64..512 channels).
model = dict(
    backbone=dict(
        attention=dict(type='mmsase.ECA', stage_args=dict(kernel_size=(3, 3, 3, 3)))))
