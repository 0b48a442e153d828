# EAN step 1, the supernet: ResNet-50 whose 16 bottlenecks share one SGE per stage (64 groups,
# 128 parameters per stage), trained under a uniformly random connection code drawn every
# iteration (RandomConnectionCodeHook: 16 i.i.d. Bernoulli(0.5) bits from the run's seed and the
# iteration, the same on every rank and after --resume) and validated with the code (0,0,0,0),
# as the authors (gbup-group/EAN-efficient-attention-network, train_imagenet_ensemble_subset.py):
# SGD lr 0.1, momentum 0.9, wd 1e-4, batch 256 (8 GPUs x 32), lr x0.1 every 40 epochs; the search
# loads the checkpoint after 40 epochs (all at lr 0.1), so training stops there.
# The authors train on ImageNet's training set less the first 100 images of each class, which
# the controller's search rewards on: give train_dataloader that split for a faithful run.
# Our standard ResNet-50 replaces the authors' FBResNet, whose convolutions all have biases.
_base_ = '../resnet/resnet50_in1k.py'

model = dict(
    backbone=dict(
        attention=dict(type='mmsase.SGE', groups=64),
        attention_shared=True))
custom_hooks = [dict(type='mmsase.RandomConnectionCodeHook', val_code='none')]
# a random code leaves some shared modules (whole stages) unused in an iteration
model_wrapper_cfg = dict(type='MMDistributedDataParallel', find_unused_parameters=True)

train_dataloader = dict(batch_size=32)  # x 8 GPUs = 256
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=1e-4))
param_scheduler = dict(_delete_=True, type='StepLR', step_size=40, gamma=0.1, by_epoch=True)
train_cfg = dict(by_epoch=True, max_epochs=40, val_interval=1)
auto_scale_lr = dict(base_batch_size=256)
