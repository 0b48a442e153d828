# CIFAR ResNet-164 + SEM after bn3 of every bottleneck (Qrange-group/SEM), CIFAR-10:
# 1,946,974 parameters. SEMDecisionHook writes sem_decisions.json / .png (the mean decision of
# every block over the test set) into the work dir after each validation.
_base_ = './resnet164_cifar10.py'
model = dict(backbone=dict(attention=dict(type='mmsase.SEM')))
custom_hooks = [dict(type='mmsase.SEMDecisionHook')]
