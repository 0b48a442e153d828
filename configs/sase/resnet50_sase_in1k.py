# ResNet-50 + SASE (the paper's searched block, spec §3) after the last BN of every bottleneck;
# the SASE paper's ImageNet settings (spec §5).
# Another genotype: tools/train.py --genotype path/genotype.json (or --cfg-options
# model.backbone.attention.genotype=path/genotype.json).
_base_ = '../resnet/resnet50_in1k.py'

model = dict(backbone=dict(attention=dict(type='mmsase.SASE', genotype=None)))
