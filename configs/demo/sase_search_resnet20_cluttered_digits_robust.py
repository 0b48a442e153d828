# The robust demo search (sase_search_resnet20_digits_robust.py) on cluttered digits
# (mmsase.ClutteredDigits: each digit at a random place of a 32x32 canvas among fragments of
# other digits; 5748 training images, so an epoch is 4x the digits': 90 iterations on the
# weight half). The supernet learns the cluttered digits slowly (plain ResNet-20 is at loss 1.8
# after 2 full epochs, 0.6 after 4): 8 warm-up epochs on the weight half (~4 full epochs' worth
# of images) before α starts, then 4 search epochs; α at lr 0.005 can move a logit by up to
# ~1.8 in its 360 steps (Adam's step is at most ~lr). A first try with 2 + 2 epochs decided
# while the supernet was at loss 2.0 and 9 % top-1 (chance 10 %).
_base_ = './sase_search_resnet20_digits_robust.py'

max_epochs = 12
warmup_epochs = 8
cluttered = dict(_delete_=True, type='mmsase.ClutteredDigits', split='train',
                 pipeline=[dict(type='RandomCrop', crop_size=32, padding=2),
                           dict(type='PackInputs')])
model = dict(warmup_epochs=warmup_epochs)
train_dataloader = dict(dataset=dict(dataset=cluttered))
val_dataloader = dict(dataset=dict(_delete_=True, type='mmsase.ClutteredDigits', split='test',
                                   pipeline=[dict(type='PackInputs')]))
test_dataloader = val_dataloader
train_cfg = dict(max_epochs=max_epochs, arch_dataloader=dict(dataset=dict(dataset=cluttered)))
param_scheduler = dict(
    weights=[dict(type='CosineAnnealingLR', T_max=max_epochs, eta_min=1e-3, by_epoch=True,
                  begin=0, end=max_epochs)])
optim_wrapper = dict(architecture=dict(optimizer=dict(lr=5e-3)))
