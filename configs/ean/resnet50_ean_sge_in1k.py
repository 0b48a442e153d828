# EAN step 3, retraining: ResNet-50 with one SGE per stage (64 groups) shared by the blocks of
# the authors' searched code '1001011010011011' = (4, 11, 19, 3), 9 of 16 blocks plugged
# (run_codes_train_from_scratch.py of gbup-group/EAN-efficient-attention-network), trained from
# scratch on ImageNet as the authors: 120 epochs, SGD lr 0.1 x0.1 every 30 epochs, momentum 0.9,
# wd 1e-4, batch 256 (8 GPUs x 32). 25,557,544 parameters. Your own search's code:
# `--connection-code work_dirs/<search>/best_code.json` (or configs/ean/codes/*.json).
_base_ = '../resnet/resnet50_in1k.py'

model = dict(
    backbone=dict(
        attention=dict(type='mmsase.SGE', groups=64),
        attention_shared=True,
        connection_code='100-1011-010011-011'))
# a code may leave a whole stage unplugged, and its shared module unused
model_wrapper_cfg = dict(type='MMDistributedDataParallel', find_unused_parameters=True)

train_dataloader = dict(batch_size=32)  # x 8 GPUs = 256
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=1e-4))
param_scheduler = dict(_delete_=True, type='StepLR', step_size=30, gamma=0.1, by_epoch=True)
train_cfg = dict(by_epoch=True, max_epochs=120, val_interval=1)
auto_scale_lr = dict(base_batch_size=256)
