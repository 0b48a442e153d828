# AutoLA's search (Ma et al., NeurIPS 2020) on mmsase's engine, with the authors' settings
# (btma48/AutoLA train_attention_search_20.py, model_search_attention_20.py,
# attention_resnet.py): DARTS over HOGA's 10 edges x 9 primitives, one α (10 x 9, N(0, 1e-3²))
# shared by every block, first order; the supernet in the authors' code is their CIFAR
# "ResNet-34" (basic blocks (3, 4, 6, 3), 16/32/64/128 channels, projection shortcuts; the paper
# says ResNet-20) with HOGA after bn2 of every block (primitives' BNs not affine, SE reductions
# 4 and 16). CIFAR-10's training set split 50/50 between the weights and α; 50 epochs, batch
# 128. Weights: SGD lr 0.025 -> 1e-4 cosine, momentum 0.9, wd 5e-4, gradient clipping at 5.
# α: Adam lr 3e-3, betas (0.5, 0.999), wd 1e-3. The genotype keeps the best primitive other
# than `none` on every edge; every epoch writes genotype.json (mmsase.AutoLA reads it:
# configs/autola/resnet20_autola_cifar10.py) and alpha_evolution.png.
_base_ = '../sase_search/sase_search_resnet20_cifar10.py'

model = dict(
    type='mmsase.DARTSSearch',
    unroll=False,
    architecture=dict(
        backbone=dict(_delete_=True, type='mmsase.CifarResNet', depth=34,
                      stage_blocks=(3, 4, 6, 3), shortcut='conv', out_indices=(3, ),
                      attention=dict(type='mmsase.AutoLASupernet')),
        head=dict(in_channels=128)))
optim_wrapper = dict(
    weights=dict(clip_grad=dict(max_norm=5.0)),
    architecture=dict(optimizer=dict(lr=3e-3)))
