# EAN step 1, the supernet: ResNet-50 whose 16 bottlenecks share one DIA module per stage (an
# LSTM cell whose gates come from C -> C/20 -> 4C MLPs; 2,801,020 parameters in all), trained
# under a uniformly random connection code drawn every iteration (RandomConnectionCodeHook: 16
# i.i.d. Bernoulli(0.5) bits from the run's seed and the iteration, the same on every rank and
# after --resume) and validated with the code (0,0,0,0), as the authors
# (gbup-group/EAN-efficient-attention-network, train_imagenet_ensemble_subset.py with
# forward_dia_fbresnet50): SGD lr 0.1, momentum 0.9, wd 1e-4, batch 256 (8 GPUs x 32), lr x0.1
# every 40 epochs; the search loads the checkpoint after 40 epochs (all at lr 0.1), so training
# stops there. The cell's state (h, c) runs from plugged block to plugged block of a stage and
# starts from zero at every forward.
# As the authors, the supernet trains on ImageNet's training set less the first 100 images of
# each class, and the search (tools/ean_search.py, `ean_search`) rewards codes on those 100 000
# images (Resize 256 / CenterCrop 224).
# Our standard ResNet-50 replaces the authors' FBResNet, whose convolutions all have biases.
_base_ = './resnet50_ean_sge_supernet_in1k.py'

model = dict(
    backbone=dict(
        attention=dict(_delete_=True, type='mmsase.DIA', reduction=20),
        attention_shared=True))
