# Mask R-CNN R50-FPN + GCT, 1x, the SASE paper's COCO settings (spec §5); the backbone starts
# from the ImageNet checkpoint of configs/gct/resnet50_gct_in1k.py.
# The authors' ResNet strides in the first 1x1 conv of a bottleneck (MSRA style): style='caffe'
# in mmpretrain/mmdet terms (only the stride moves; the input normalisation stays).
_base_ = '../resnet/mask_rcnn_r50_1x_coco.py'

imagenet_checkpoint = 'work_dirs/resnet50_gct_in1k/epoch_100.pth'
model = dict(
    backbone=dict(
        style='caffe',
        attention=dict(type='mmsase.GCT'),
        init_cfg=dict(checkpoint=imagenet_checkpoint)))
# The authors' main.py trains GCT's β without weight decay; custom_keys match a substring
# of the parameter name, and '.beta' is in GCT's β only.
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={'.beta': dict(decay_mult=0.0)}))
