# EAN demo, steps 1 and 2 on the digits (CPU, minutes): ResNet-20 whose 9 basic blocks share
# one SE (r = 4) per stage, trained as a supernet under a uniformly random connection code per
# iteration (RandomConnectionCodeHook), then searched by tools/ean_search.py (`ean_search`).
# As the authors (gbup-group/EAN-efficient-attention-network) hold out part of the *training*
# set for the search's rewards: the digits' training images are cut into 4 seeded parts, the
# supernet trains on parts 1-3 and the controller is rewarded on part 0 (360 images).
_base_ = './cifar_resnet20_digits.py'

model = dict(
    backbone=dict(attention=dict(type='mmsase.SE', reduction=4), attention_shared=True))
custom_hooks = [dict(type='mmsase.RandomConnectionCodeHook', val_code='none')]

_split = dict(type='mmsase.SplitDataset', num_parts=4, seed=0)
_digits = dict(type='mmsase.Digits32', split='train')
train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='ConcatDataset',
        datasets=[
            dict(_split, part=part,
                 dataset=dict(_digits, pipeline={{_base_.train_pipeline}}))
            for part in (1, 2, 3)
        ]))

ean_search = dict(
    heldout_dataloader=dict(
        batch_size=360,
        num_workers=0,
        dataset=dict(_split, part=0, dataset=dict(_digits, pipeline={{_base_.test_pipeline}})),
        sampler=dict(type='DefaultSampler', shuffle=False)),
    steps=50,  # the authors' other settings (tools/ean_search.py): 3 codes a step, T = 5,
    # Adam 5e-2, EMA baseline 0.95, R = top-1 + 2 * unplugged fraction - 54, RND, replay
)
