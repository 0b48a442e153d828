_base_ = './cifar_resnet20_digits.py'
# The searched block; a search run's genotype: --genotype work_dirs/.../genotype.json
model = dict(backbone=dict(attention=dict(type='mmsase.SASE', genotype=None)))
