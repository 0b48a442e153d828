# CPU-sized SASE search: the paper's search (configs/sase_search/sase_search_resnet20_cifar10.py)
# on the embedded scikit-learn digits (32x32), first-order DARTS, a few epochs. A few minutes here.
_base_ = '../sase_search/sase_search_resnet20_cifar10.py'

max_epochs = 6
batch_size = 64
digits = dict(_delete_=True, type='mmsase.Digits32', split='train',
              pipeline=[dict(type='RandomCrop', crop_size=32, padding=2),
                        dict(type='PackInputs')])
model = dict(
    unroll=False,
    architecture=dict(data_preprocessor=dict(mean=[8.0, 8.0, 8.0], std=[40.0, 40.0, 40.0])))
train_dataloader = dict(batch_size=batch_size, num_workers=0,
                        dataset=dict(dataset=digits))
val_dataloader = dict(
    batch_size=128, num_workers=0,
    dataset=dict(_delete_=True, type='mmsase.Digits32', split='test',
                 pipeline=[dict(type='PackInputs')]))
test_dataloader = val_dataloader
train_cfg = dict(
    max_epochs=max_epochs, val_interval=max_epochs,
    arch_dataloader=dict(batch_size=batch_size, num_workers=0, dataset=dict(dataset=digits)))
param_scheduler = dict(
    weights=[dict(type='CosineAnnealingLR', T_max=max_epochs, eta_min=1e-4, by_epoch=True,
                  begin=0, end=max_epochs)])
# a larger α step than CIFAR's 3e-4 so that a 6-epoch search moves α visibly
optim_wrapper = dict(architecture=dict(optimizer=dict(lr=3e-3)))
default_hooks = dict(logger=dict(type='LoggerHook', interval=5))
