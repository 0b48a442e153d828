# ResNet-20 + SEM on the digits: SEM where its authors do *not* put it, kept for users who
# reference this file; `make demo` (tools/demo.py) runs SEM in a bottleneck ResNet-29 instead
# (cifar_resnet29_sem_digits.py against cifar_resnet29_digits.py). ResNet-20 has basic blocks:
# SEM goes after their second BN here; its authors put it only in bottlenecks with projection
# shortcuts (configs/sem/ has their ResNet-164). At initialisation SEM scales each residual
# branch by about 0.1 (σ(w0·FC)·σ(w1·ECA)·σ(−w2) ≈ 0.5·0.5·0.38), and the padded channels of
# ResNet-20's parameter-free shortcuts carry only that branch, so this network starts learning
# late: with the 6-epoch recipe it reached 22.5 % top-1 where the other ResNet-20 rows reach
# about 98 %. SEMDecisionHook writes sem_decisions.json / .png (each block's mean decision)
# after the validation.
_base_ = './cifar_resnet20_digits.py'
model = dict(backbone=dict(attention=dict(type='mmsase.SEM')))
custom_hooks = [dict(type='mmsase.SEMDecisionHook')]
