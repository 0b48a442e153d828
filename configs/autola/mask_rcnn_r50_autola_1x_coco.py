# Mask R-CNN R50-FPN + AutoLA, 1x, the SASE paper's COCO settings (spec §5); the backbone starts
# from the ImageNet checkpoint of configs/autola/resnet50_autola_in1k.py.
_base_ = '../resnet/mask_rcnn_r50_1x_coco.py'

imagenet_checkpoint = 'work_dirs/resnet50_autola_in1k/epoch_100.pth'
model = dict(
    backbone=dict(
        attention=dict(type='mmsase.AutoLA', genotype=None),
        init_cfg=dict(checkpoint=imagenet_checkpoint)))
