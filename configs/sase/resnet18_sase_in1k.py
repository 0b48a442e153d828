# ResNet-18 + SASE (the paper's searched block) after bn2 of every basic block; the recipe of
# resnet18_in1k.py. Another genotype: tools/train.py --genotype path/genotype.json.
_base_ = '../resnet/resnet18_in1k.py'

model = dict(backbone=dict(attention=dict(type='mmsase.SASE', genotype=None)))
