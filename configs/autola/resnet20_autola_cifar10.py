# CIFAR ResNet-20 + AutoLA on CIFAR-10, the authors' evaluation (btma48/AutoLA
# test_attention_20.py with attention_model_test.py): the searched HOGA block after bn2 of every
# basic block, 1x1-conv projection shortcuts (their CifarAttentionBasicBlock), SGD lr 0.1 cosine
# to 0, momentum 0.9, wd 5e-4, batch 256, 600 epochs, gradient clipping at norm 5; standard
# crop + flip augmentation. The genotype of your own search (configs/autola_search/):
# --cfg-options model.backbone.attention.genotype=work_dirs/<search>/genotype.json
_base_ = '../sem/resnet164_cifar10.py'

model = dict(
    backbone=dict(_delete_=True, type='mmsase.CifarResNet', depth=20, shortcut='conv',
                  attention=dict(type='mmsase.AutoLA', genotype=None)),
    head=dict(in_channels=64))
train_dataloader = dict(batch_size=256)
max_epochs = 600
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=5e-4),
                     clip_grad=dict(max_norm=5.0))
param_scheduler = dict(_delete_=True, type='CosineAnnealingLR', T_max=max_epochs, by_epoch=True,
                       eta_min=0.0)
train_cfg = dict(max_epochs=max_epochs)
auto_scale_lr = dict(base_batch_size=256)
