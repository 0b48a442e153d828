# ResNet-50 + AutoLA (the HOGA block of the authors' searched genotype, btma48/AutoLA
# genotypes.py `Attention`, SE reductions 8/8 as their evaluated model) after the last BN of
# every bottleneck, where the authors' code places it (after bn2 of its CIFAR basic block); the
# SASE paper's ImageNet settings (spec §5). At the bottleneck's output width this adds
# 3.11·C² per block, far more than the SASE paper's printed total: see configs/autola/README.md.
# Another genotype (e.g. from configs/autola_search/): --cfg-options
# model.backbone.attention.genotype=path/genotype.json
_base_ = '../resnet/resnet50_in1k.py'

model = dict(backbone=dict(attention=dict(type='mmsase.AutoLA', genotype=None)))
