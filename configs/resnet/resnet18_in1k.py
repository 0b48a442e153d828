# Plain ResNet-18 (basic blocks) on ImageNet-1k with the same recipe as resnet50_in1k.py (the SASE
# paper's transfer settings: 100 epochs, batch 128, SGD lr 0.05 cosine). The base of every
# configs/<method>/resnet18_<method>_in1k.py, which only adds model.backbone.attention: the block
# goes after bn2 of every basic block, where the SE, CBAM and ECA authors put it.
_base_ = './resnet50_in1k.py'

model = dict(backbone=dict(depth=18), head=dict(in_channels=512))
