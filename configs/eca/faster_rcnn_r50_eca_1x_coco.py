# Faster R-CNN R50-FPN + ECA, 1x, the SASE paper's COCO settings (spec §5); the backbone starts
# from the ImageNet checkpoint of configs/eca/resnet50_eca_in1k.py.
_base_ = '../resnet/faster_rcnn_r50_1x_coco.py'

imagenet_checkpoint = 'work_dirs/resnet50_eca_in1k/epoch_100.pth'
# One kernel size per stage, those of the authors' checkpoint eca_resnet50_k3557 (their --ksize
# 3557), not the paper's formula (which gives 5, 5, 5, 7).
model = dict(
    backbone=dict(
        attention=dict(type='mmsase.ECA', stage_args=dict(kernel_size=(3, 5, 5, 7))),
        init_cfg=dict(checkpoint=imagenet_checkpoint)))
