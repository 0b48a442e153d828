# EAN demo, step 3: ResNet-20 with one SE (r = 4) per stage shared by the blocks a connection
# code plugs, retrained from scratch on the whole digits training set. The code comes from
# --connection-code (the search's best_code.json); without it, every block is plugged.
_base_ = './cifar_resnet20_digits.py'

model = dict(
    backbone=dict(attention=dict(type='mmsase.SE', reduction=4), attention_shared=True))
