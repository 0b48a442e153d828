# Mask R-CNN R101-FPN + ECA, 1x, the SASE paper's COCO settings (spec §5); the backbone starts
# from the ImageNet checkpoint of configs/eca/resnet101_eca_in1k.py.
_base_ = '../resnet/mask_rcnn_r101_1x_coco.py'

imagenet_checkpoint = 'work_dirs/resnet101_eca_in1k/epoch_100.pth'
# One kernel size per stage, those of the authors' checkpoint eca_resnet101_k3357 (their --ksize
# 3357).
model = dict(
    backbone=dict(
        attention=dict(type='mmsase.ECA', stage_args=dict(kernel_size=(3, 3, 5, 7))),
        init_cfg=dict(checkpoint=imagenet_checkpoint)))
