# EAN step 3, retraining: ResNet-50 with one DIA module per stage (an LSTM cell, gates from
# C -> C/20 -> 4C MLPs, output o * sigmoid(c)) shared by the blocks of the authors' searched code
# '1100011110010011' = (6, 3, 50, 3), 9 of 16 blocks plugged
# (run_codes_train_from_scratch.py of gbup-group/EAN-efficient-attention-network), trained from
# scratch on ImageNet as the authors: 120 epochs, SGD lr 0.1 x0.1 every 30 epochs, momentum 0.9,
# wd 1e-4, batch 256 (8 GPUs x 32). 28,358,052 parameters (25,557,032 + 2,801,020). Your own
# search's code: `--connection-code work_dirs/<search>/best_code.json` (or configs/ean/codes/).
_base_ = './resnet50_ean_sge_in1k.py'

model = dict(
    backbone=dict(
        attention=dict(_delete_=True, type='mmsase.DIA', reduction=20),
        attention_shared=True,
        connection_code='110-0011-110010-011'))
