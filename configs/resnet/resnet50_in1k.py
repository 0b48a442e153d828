# Plain ResNet-50 on ImageNet-1k with the SASE paper's transfer settings (spec §5):
# 100 epochs, total batch 128 (4 GPUs x 32), SGD lr 0.05 (linear scaling rule) cosine to 0,
# momentum 0.9, wd 1e-4, RandomResizedCrop 224. The baseline row of the paper's tables and
# the base of every configs/<method>/resnet50_<method>_in1k.py, which only adds
# model.backbone.attention (the backbone puts the block where its authors put it).
_base_ = 'mmpretrain::resnet/resnet50_8xb32_in1k.py'

custom_imports = dict(imports=['mmsase.models', 'mmsase.engine'], allow_failed_imports=False)

model = dict(backbone=dict(type='mmsase.AttentionResNet', depth=50))

# mmsase.ImageNet: mmpretrain's, plus errors that say how to provide missing data
dataset_type = 'mmsase.ImageNet'
train_dataloader = dict(batch_size=32, dataset=dict(type=dataset_type))  # x 4 GPUs = 128
val_dataloader = dict(dataset=dict(type=dataset_type))
test_dataloader = dict(dataset=dict(type=dataset_type))
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.05, momentum=0.9, weight_decay=1e-4))
param_scheduler = dict(
    _delete_=True, type='CosineAnnealingLR', T_max=100, eta_min=0.0, by_epoch=True,
    begin=0, end=100)
train_cfg = dict(by_epoch=True, max_epochs=100, val_interval=1)
auto_scale_lr = dict(base_batch_size=128)
