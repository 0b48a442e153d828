# New-style twin of configs/_base_/digits32_bs64.py: scikit-learn's handwritten digits at
# 32x32 (mmsase.Digits32), embedded in scikit-learn, so CPU demos and tests need no download.
from mmengine.dataset import DefaultSampler
from mmpretrain.datasets import PackInputs, RandomCrop
from mmpretrain.evaluation import Accuracy
from mmpretrain.models import ClsDataPreprocessor

from mmsase.datasets import Digits32

dataset_type = Digits32
data_preprocessor = dict(
    type=ClsDataPreprocessor,
    num_classes=10,
    mean=[8.0, 8.0, 8.0],  # digits are 0..255 ink on a black background, mostly black
    std=[40.0, 40.0, 40.0],
    to_rgb=False)

train_pipeline = [
    dict(type=RandomCrop, crop_size=32, padding=2),
    dict(type=PackInputs),
]
test_pipeline = [dict(type=PackInputs)]

train_dataloader = dict(
    batch_size=64,
    num_workers=0,
    dataset=dict(type=dataset_type, split='train', pipeline=train_pipeline),
    sampler=dict(type=DefaultSampler, shuffle=True),
)
val_dataloader = dict(
    batch_size=128,
    num_workers=0,
    dataset=dict(type=dataset_type, split='test', pipeline=test_pipeline),
    sampler=dict(type=DefaultSampler, shuffle=False),
)
val_evaluator = dict(type=Accuracy, topk=(1, ))
test_dataloader = val_dataloader
test_evaluator = val_evaluator
