# Faster R-CNN R50-FPN, 1x (the SASE paper's COCO settings, configs/resnet/), whose backbone is
# the retrained EAN network of configs/ean/resnet50_ean_sge_in1k.py: one SGE per stage shared by
# the blocks of the code '1001011010011011'; it starts from that config's ImageNet checkpoint
# (backbone.shared_attention.<stage>.* included). Another code: --connection-code code.json,
# the same file as the ImageNet run's.
_base_ = '../resnet/faster_rcnn_r50_1x_coco.py'

imagenet_checkpoint = 'work_dirs/resnet50_ean_sge_in1k/epoch_120.pth'
model = dict(
    backbone=dict(
        attention=dict(type='mmsase.SGE', groups=64),
        attention_shared=True,
        connection_code='100-1011-010011-011',
        init_cfg=dict(checkpoint=imagenet_checkpoint)))
model_wrapper_cfg = dict(type='MMDistributedDataParallel', find_unused_parameters=True)
