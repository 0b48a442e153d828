# Faster R-CNN R50-FPN + SASE (spec §5): the searched block after conv3/bn3 of every
# bottleneck, the backbone initialised from configs/resnet50_sase_in1k.py's checkpoint.
# Another genotype: --genotype path/genotype.json.
_base_ = './faster_rcnn_r50_1x_coco.py'

imagenet_checkpoint = 'work_dirs/resnet50_sase_in1k/epoch_100.pth'
model = dict(
    backbone=dict(
        plugins=[dict(cfg=dict(type='mmsase.SASE', genotype=None), position='after_conv3')],
        init_cfg=dict(checkpoint=imagenet_checkpoint)))
