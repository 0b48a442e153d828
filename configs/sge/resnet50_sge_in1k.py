# ResNet-50 + SGE (Spatial Group-wise Enhance, Li, Hu & Yang, 2019) after the last BN of every
# bottleneck, 64 groups, the authors' module and placement (implus/PytorchInsight
# resnet_sge.py); the SASE paper's ImageNet settings (spec §5).
_base_ = '../resnet/resnet50_in1k.py'

model = dict(backbone=dict(attention=dict(type='mmsase.SGE', groups=64)))
