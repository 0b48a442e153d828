# The paper's SASE search (sase_search_resnet20_cifar10.py) with the recommended collapse
# countermeasures (mmsase.models.algorithms.countermeasures; issue 28):
#   warm-up   the first 15 of 50 epochs train the weights only (PC-DARTS' 15 of 50), so every
#             operation is trained before α starts choosing;
#   β-decay   λ(t)·mean_e (logsumexp α_e − mean α_e) in the architecture loss, λ ramped 0 → 25
#             from the end of warm-up (β-DARTS; centred: the same effect on softmax(α) without
#             the common gradient that Adam would turn into a frozen α);
#   smoothing the weight step runs with softmax(α) + U(−ε, ε), clipped and renormalised, ε
#             0.03 → 0.3 (SDARTS-RS).
# Choose the genotype by perturbation afterwards (DARTS-PT), not by argmax:
#   python tools/derive_genotype.py WORK_DIR/epoch_50.pth --method pt \
#       --config configs/sase_search/sase_search_resnet20_cifar10_robust.py
# The planted benchmarks (tools/analysis/search_sanity.py) measure what each piece does.
_base_ = './sase_search_resnet20_cifar10.py'

model = dict(
    warmup_epochs=15,
    beta_decay=dict(max_weight=25.0, centred=True),
    random_smoothing=dict(max_epsilon=0.3, min_epsilon=0.03))
