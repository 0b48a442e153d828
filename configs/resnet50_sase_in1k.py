# ResNet-50 + SASE (the paper's searched block after the last BN of every bottleneck).
# Another genotype: --cfg-options model.backbone.attention.genotype=path/genotype.json
# (or tools/train.py --genotype path/genotype.json).
_base_ = './resnet50_in1k.py'

model = dict(backbone=dict(attention=dict(type='mmsase.SASE', genotype=None)))
