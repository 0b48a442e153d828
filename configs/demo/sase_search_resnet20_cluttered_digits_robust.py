# The robust demo search (sase_search_resnet20_digits_robust.py) on cluttered digits
# (mmsase.ClutteredDigits: each digit at a random place of a 32x32 canvas among fragments of
# other digits; 5748 training images, so an epoch is 4x the digits': 90 iterations on the
# weight half): 2 warm-up + 2 search epochs, twice the digits search's steps for a harder task;
# α at lr 0.005 can move a logit by up to ~0.9 in its 180 steps.
_base_ = './sase_search_resnet20_digits_robust.py'

max_epochs = 4
warmup_epochs = 2
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
