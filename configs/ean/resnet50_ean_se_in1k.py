# EAN step 3 with SE: ResNet-50 with one SE (r = 16) per stage shared by the plugged blocks,
# retrained from scratch with the authors' ImageNet settings (120 epochs, SGD lr 0.1 x0.1 every
# 30 epochs, momentum 0.9, wd 1e-4, batch 256). The authors publish no searched code for SE:
# the shipped example is their searched code for DIA, '1100011110010011' = (6, 3, 50, 3), 9 of
# 16 plugged (run_codes_train_from_scratch.py; configs/ean/codes/resnet50_dia_authors.json).
# Run the search for SE and pass its result: `--connection-code work_dirs/<search>/best_code.json`.
# 26,257,432 parameters whatever the code (4 SE modules, 700,400 parameters in all).
_base_ = './resnet50_ean_sge_in1k.py'

model = dict(
    backbone=dict(
        attention=dict(_delete_=True, type='mmsase.SE', reduction=16),
        connection_code='110-0011-110010-011'))
