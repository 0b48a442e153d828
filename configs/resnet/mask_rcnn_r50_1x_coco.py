# Mask R-CNN R50-FPN, 1x, with the SASE paper's COCO settings (spec §5): total batch 8
# (4 GPUs x 2), lr 0.01, SGD momentum 0.9, wd 1e-4, lr x0.1 at epochs 8 and 11; the rest is
# mmdet's. Backbone: mmsase.AttentionResNet, as in faster_rcnn_r50_1x_coco.py, starting from
# the ImageNet checkpoint of configs/resnet/resnet50_in1k.py: train that first, or point
# model.backbone.init_cfg.checkpoint at your own file.
_base_ = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'

custom_imports = dict(imports=['mmsase.models', 'mmsase.engine'], allow_failed_imports=False)

imagenet_checkpoint = 'work_dirs/resnet50_in1k/epoch_100.pth'
model = dict(
    backbone=dict(
        type='mmsase.AttentionResNet',
        init_cfg=dict(type='Pretrained', prefix='backbone.', checkpoint=imagenet_checkpoint)))

# mmsase.CocoDataset is mmdet's CocoDataset plus checks that name a missing data root or a
# broken annotation entry before training starts.
train_dataloader = dict(batch_size=2, dataset=dict(type='mmsase.CocoDataset'))  # x 4 GPUs = 8
val_dataloader = dict(dataset=dict(type='mmsase.CocoDataset'))
test_dataloader = val_dataloader
optim_wrapper = dict(optimizer=dict(lr=0.01))
auto_scale_lr = dict(base_batch_size=8)
