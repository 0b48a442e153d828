# EAN step 1, the supernet: ResNet-50 whose 16 bottlenecks share one SGE per stage (64 groups,
# 128 parameters per stage), trained under a uniformly random connection code drawn every
# iteration (RandomConnectionCodeHook: 16 i.i.d. Bernoulli(0.5) bits from the run's seed and the
# iteration, the same on every rank and after --resume) and validated with the code (0,0,0,0),
# as the authors (gbup-group/EAN-efficient-attention-network, train_imagenet_ensemble_subset.py):
# SGD lr 0.1, momentum 0.9, wd 1e-4, batch 256 (8 GPUs x 32), lr x0.1 every 40 epochs; the search
# loads the checkpoint after 40 epochs (all at lr 0.1), so training stops there.
# As the authors, the supernet trains on ImageNet's training set less the first 100 images of
# each class, and the search (tools/ean_search.py, `ean_search`) rewards codes on those 100 000
# images (Resize 256 / CenterCrop 224).
# Our standard ResNet-50 replaces the authors' FBResNet, whose convolutions all have biases.
_base_ = '../resnet/resnet50_in1k.py'

model = dict(
    backbone=dict(
        attention=dict(type='mmsase.SGE', groups=64),
        attention_shared=True))
custom_hooks = [dict(type='mmsase.RandomConnectionCodeHook', val_code='none')]
# a random code leaves some shared modules (whole stages) unused in an iteration
model_wrapper_cfg = dict(type='MMDistributedDataParallel', find_unused_parameters=True)

_imagenet = dict(type='mmsase.ImageNet', data_root='data/imagenet', split='train')
train_dataloader = dict(
    batch_size=32,  # x 8 GPUs = 256
    dataset=dict(
        _delete_=True,
        type='mmsase.PerClassSplit',
        part=1,
        num_per_class=100,
        dataset=dict(_imagenet, pipeline={{_base_.train_pipeline}})))
ean_search = dict(
    heldout_dataloader=dict(
        batch_size=250,
        num_workers=5,
        dataset=dict(
            type='mmsase.PerClassSplit',
            part=0,
            num_per_class=100,
            dataset=dict(_imagenet, pipeline={{_base_.test_pipeline}})),
        sampler=dict(type='DefaultSampler', shuffle=False)))
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=1e-4))
param_scheduler = dict(_delete_=True, type='StepLR', step_size=40, gamma=0.1, by_epoch=True)
train_cfg = dict(by_epoch=True, max_epochs=40, val_interval=1)
auto_scale_lr = dict(base_batch_size=256)
