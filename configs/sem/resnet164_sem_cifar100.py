# CIFAR ResNet-164 + SEM (Qrange-group/SEM), CIFAR-100: 1,970,104 parameters. SEMDecisionHook
# writes sem_decisions.json / .png into the work dir after each validation.
_base_ = './resnet164_cifar100.py'
model = dict(backbone=dict(attention=dict(type='mmsase.SEM')))
custom_hooks = [dict(type='mmsase.SEMDecisionHook')]
