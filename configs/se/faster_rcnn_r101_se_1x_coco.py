# Faster R-CNN R101-FPN + SE, 1x, the SASE paper's COCO settings (spec §5); the backbone starts
# from the ImageNet checkpoint of configs/se/resnet101_se_in1k.py.
_base_ = '../resnet/faster_rcnn_r101_1x_coco.py'

imagenet_checkpoint = 'work_dirs/resnet101_se_in1k/epoch_100.pth'
model = dict(
    backbone=dict(
        attention=dict(type='mmsase.SE', reduction=16),
        init_cfg=dict(checkpoint=imagenet_checkpoint)))
