# Faster R-CNN R101-FPN + SRM, 1x, the SASE paper's COCO settings (spec §5); the backbone starts
# from the ImageNet checkpoint of configs/srm/resnet101_srm_in1k.py.
_base_ = '../resnet/faster_rcnn_r101_1x_coco.py'

imagenet_checkpoint = 'work_dirs/resnet101_srm_in1k/epoch_100.pth'
model = dict(
    backbone=dict(
        attention=dict(type='mmsase.SRM'),
        init_cfg=dict(checkpoint=imagenet_checkpoint)))
# The authors train SRM's parameters (cfc and its BN) without weight decay (imagenet.py);
# custom_keys match a substring of the parameter name: '.srm.' is every parameter
# of an SRM block and nothing else.
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={'.srm.': dict(decay_mult=0.0)}))
