# ResNet-20 + SEM on the digits (the demo's table). ResNet-20 has basic blocks: SEM goes after
# their second BN here; its authors put it only in bottlenecks (configs/sem/ has their
# ResNet-164). The hook writes sem_decisions.json / .png (the decision of each block) after the
# validation.
_base_ = './cifar_resnet20_digits.py'
model = dict(backbone=dict(attention=dict(type='mmsase.SEM')))
custom_hooks = [dict(type='mmsase.SEMDecisionHook')]
