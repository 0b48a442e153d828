# ResNet-20 + SEM on the digits (the demo's table). ResNet-20 has basic blocks: SEM goes after
# their second BN here; its authors put it only in bottlenecks (configs/sem/ has their
# ResNet-164). At initialisation SEM scales each residual branch by about 0.1
# (σ(w0·FC)·σ(w1·ECA)·σ(−w2) ≈ 0.5·0.5·0.38), and the padded channels of ResNet-20's
# parameter-free shortcuts carry only that branch, so this network starts learning late: in the
# demo's 6 epochs it stays far below the others (a bottleneck ResNet-29 + SEM, with projection
# shortcuts, learns faster than the plain ResNet-29 on the same data). SEMDecisionHook writes
# sem_decisions.json / .png (each block's mean decision) after the validation.
_base_ = './cifar_resnet20_digits.py'
model = dict(backbone=dict(attention=dict(type='mmsase.SEM')))
custom_hooks = [dict(type='mmsase.SEMDecisionHook')]
