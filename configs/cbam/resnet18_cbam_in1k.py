# ResNet-18 + CBAM (Woo et al., ECCV 2018) after bn2 of every basic block, the authors' module
# (Jongchan/attention-module, whose model_resnet.py builds ResNet-18 the same way); the recipe
# of resnet18_in1k.py.
_base_ = '../resnet/resnet18_in1k.py'

model = dict(backbone=dict(attention=dict(type='mmsase.CBAM')))
