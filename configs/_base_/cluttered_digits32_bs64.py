# The cluttered digits (mmsase.ClutteredDigits): scikit-learn's handwritten digits, upsampled
# to 16x16, each at a random place of a black 32x32 canvas with 6 8x8 fragments of other
# digits of its split (the cluttered MNIST of Mnih et al. 2014, scaled down): the attention
# testbed. Digits32's split of the digits, 4 images per digit (5748 train / 1440 test), the
# loaders, pipelines and normalisation of digits32_bs64.py; only the data set differs.
_base_ = ['./digits32_bs64.py']
dataset_type = 'mmsase.ClutteredDigits'
train_dataloader = dict(dataset=dict(type=dataset_type))
val_dataloader = dict(dataset=dict(type=dataset_type))
test_dataloader = val_dataloader
