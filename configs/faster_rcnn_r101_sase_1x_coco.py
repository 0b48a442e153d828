_base_ = './faster_rcnn_r101_1x_coco.py'

imagenet_checkpoint = 'work_dirs/resnet101_sase_in1k/epoch_100.pth'
model = dict(
    backbone=dict(
        plugins=[dict(cfg=dict(type='mmsase.SASE', genotype=None), position='after_conv3')],
        init_cfg=dict(checkpoint=imagenet_checkpoint)))
