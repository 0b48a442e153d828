# CPU demo: CIFAR ResNet-29 + SEM on the digits, the demo's SEM row. SEM goes after bn3 of every
# bottleneck, where its authors put it (Qrange-group/SEM; configs/sem/ has their ResNet-164),
# and the bottlenecks' projection shortcuts keep every identity channel at full scale. Compare
# it with cifar_resnet29_digits.py (the same half-width ResNet-29 and recipe without SEM), not
# with the ResNet-20 rows. At initialisation SEM scales each residual branch by about 0.1, so
# the branches' convolutions start learning slowly: in the demo's 6 epochs it learns (73-75 %
# top-1, seed 0, against 92-96 % for the plain ResNet-29) but trails; its authors train 164
# epochs. SEMDecisionHook writes sem_decisions.json / .png (each block's mean decision) after
# the validation.
_base_ = './cifar_resnet29_digits.py'
model = dict(backbone=dict(attention=dict(type='mmsase.SEM')))
custom_hooks = [dict(type='mmsase.SEMDecisionHook')]
