# CPU-sized AutoLA search: configs/autola_search/autola_search_resnet34_cifar10.py's search
# (HOGA's 10 edges x 9 primitives, one α shared by every block, first order, α Adam 3e-3, the
# weights clipped at norm 5) on the embedded scikit-learn digits (32x32), on a CIFAR ResNet-8
# (one basic block per stage, projection shortcuts) with batch 32: the supernet runs 90
# primitives per block, one ResNet-20 iteration took ~30 s on 2 cores (1.6 s forward + 1.5 s
# backward for the first stage's block alone). The genotype (work_dir/genotype.json) loads into
# mmsase.AutoLA.
_base_ = './sase_search_resnet20_digits.py'

max_epochs = 4
batch_size = 32

model = dict(
    type='mmsase.DARTSSearch',
    architecture=dict(
        backbone=dict(_delete_=True, type='mmsase.CifarResNet', depth=8, shortcut='conv',
                      attention=dict(type='mmsase.AutoLASupernet'))))
optim_wrapper = dict(weights=dict(clip_grad=dict(max_norm=5.0)))
train_dataloader = dict(batch_size=batch_size)
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs,
                 arch_dataloader=dict(batch_size=batch_size))
param_scheduler = dict(
    weights=[dict(type='CosineAnnealingLR', T_max=max_epochs, eta_min=1e-4, by_epoch=True,
                  begin=0, end=max_epochs)])
