# Mask R-CNN R101-FPN, 1x (spec §5): total batch 4 (4 GPUs x 1), lr 0.005.
_base_ = './mask_rcnn_r50_1x_coco.py'

imagenet_checkpoint = 'work_dirs/resnet101_in1k/epoch_100.pth'
model = dict(backbone=dict(depth=101, init_cfg=dict(checkpoint=imagenet_checkpoint)))
train_dataloader = dict(batch_size=1)  # x 4 GPUs = 4
optim_wrapper = dict(optimizer=dict(lr=0.005))
auto_scale_lr = dict(base_batch_size=4)
