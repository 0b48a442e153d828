# Faster R-CNN R50-FPN + SASE, 1x, the SASE paper's COCO settings (spec §5); the backbone starts
# from the ImageNet checkpoint of configs/sase/resnet50_sase_in1k.py.
# Another genotype: tools/train.py --genotype path/genotype.json (or --cfg-options
# model.backbone.attention.genotype=path/genotype.json).
_base_ = '../resnet/faster_rcnn_r50_1x_coco.py'

imagenet_checkpoint = 'work_dirs/resnet50_sase_in1k/epoch_100.pth'
model = dict(
    backbone=dict(
        attention=dict(type='mmsase.SASE', genotype=None),
        init_cfg=dict(checkpoint=imagenet_checkpoint)))
