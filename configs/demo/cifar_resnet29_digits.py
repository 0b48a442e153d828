# CPU demo: plain CIFAR ResNet-29 on the digits, the plain row of the demo's SEM pair
# (cifar_resnet29_sem_digits.py adds SEM and nothing else). ResNet-29 is the bottleneck CIFAR
# ResNet (9n+2 with n = 3: 1x1-3x3-1x1 blocks, projection shortcuts where the shape changes),
# the block SEM's authors use, here at half their width (base_channels=8: 8/16/32 planes,
# 32/64/128 channels out, 80 k parameters) so that a run costs about what a ResNet-20 run does
# on a CPU (with 16 planes a training step took 2-2.4x a ResNet-20 step). The recipe of
# cifar_resnet20_digits.py except batch 32: with batch 64 (138 steps in 6 epochs) this network
# was still at training loss 0.8 and 66 % top-1; with batch 32 (270 steps) 92-96 % (seed 0,
# 2 CPU cores; ResNet-20: 98.3 %).
_base_ = './cifar_resnet20_digits.py'
model = dict(
    backbone=dict(depth=29, block='bottleneck', base_channels=8),
    head=dict(in_channels=128))
train_dataloader = dict(batch_size=32)
