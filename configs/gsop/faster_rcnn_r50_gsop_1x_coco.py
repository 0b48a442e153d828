# Faster R-CNN R50-FPN + GSoP, 1x, the SASE paper's COCO settings (spec §5); the backbone starts
# from the ImageNet checkpoint of configs/gsop/resnet50_gsop_in1k.py.
# As the authors: d = 128, and the 1x1 reduction conv has stride 2 in stage 1 only
# (reduction_stride). The authors train 95 epochs; the SASE paper's rows use its own 100-epoch
# settings, kept here.
# The detectors keep mmdet's strides (1, 2, 2, 2): the FPN needs the stride-32 level. Strides
# hold no weights, so the ImageNet checkpoint loads as it is.
_base_ = '../resnet/faster_rcnn_r50_1x_coco.py'

imagenet_checkpoint = 'work_dirs/resnet50_gsop_in1k/epoch_100.pth'
model = dict(
    backbone=dict(
        attention=dict(type='mmsase.GSoP', stage_args=dict(reduction_stride=(2, 1, 1, 1))),
        init_cfg=dict(checkpoint=imagenet_checkpoint)))
