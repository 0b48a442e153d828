# The demo's SASE search with the recommended countermeasures (the digits twin of
# configs/sase_search/sase_search_resnet20_cifar10_robust.py); `make demo` runs it.
# * Warm-up: the first 4 of 8 epochs train the weights only, so α starts choosing on a
#   trained supernet (validated after every epoch: the log shows its top-1 when α starts).
#   The weights take the plain digits config's step (SGD lr 0.1, batch 32: 22 iterations per
#   epoch on the weight half); with the CIFAR search's lr 0.025 and batch 64 the supernet was
#   still at 23 % top-1 after 4 epochs.
# * α's step: Adam moves a logit by at most about lr per step (|m/√v| <= 1), and α has
#   4 epochs x 22 iterations = 88 steps; lr 0.015 lets a logit move up to ~1.3, enough to take
#   an operation from the uniform 1/7 to over a third of its edge. The paper's 3e-4 could
#   move it by 0.03 in these steps: α could not leave the uniform start.
# * β-decay (centred, λ 0 → 25 after warm-up) and random smoothing of the weight step
#   (ε 0.03 → 0.3), as the robust CIFAR config. The demo then chooses the genotype by
#   perturbation (tools/derive_genotype.py --method pt).
_base_ = './sase_search_resnet20_digits.py'

max_epochs = 10
warmup_epochs = 6
batch_size = 32
model = dict(
    warmup_epochs=warmup_epochs,
    beta_decay=dict(max_weight=25.0, centred=True),
    random_smoothing=dict(max_epsilon=0.3, min_epsilon=0.03))
train_dataloader = dict(batch_size=batch_size)
train_cfg = dict(max_epochs=max_epochs, val_interval=1,
                 arch_dataloader=dict(batch_size=batch_size))
param_scheduler = dict(
    weights=[dict(type='CosineAnnealingLR', T_max=max_epochs, eta_min=1e-3, by_epoch=True,
                  begin=0, end=max_epochs)])
optim_wrapper = dict(weights=dict(optimizer=dict(lr=0.1)),
                     architecture=dict(optimizer=dict(lr=1.5e-2)))
