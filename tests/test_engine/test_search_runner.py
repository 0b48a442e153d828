"""End to end: an mmengine Runner searching on a tiny in-memory data set, and resuming."""
import math
import os
import os.path as osp

import pytest
import torch
from mmengine.runner import Runner
from PIL import Image

from _search_toys import single_thread  # noqa: F401 (fixture)
from _search_toys import ToyImages, search_optim_wrapper_cfg, tiny_search_cfg, toy_loader

pytestmark = pytest.mark.usefixtures('single_thread')

WEIGHTS_LR, ARCHITECTURE_LR, ETA_MIN, T_MAX = 0.05, 3e-4, 1e-4, 4


def make_runner(work_dir, max_epochs, name, resume=False, **search_options):
    half = dict(type='mmsase.HalfSplit', dataset=ToyImages(16), seed=0)
    return Runner(
        model=dict(tiny_search_cfg(unroll=True), **search_options),
        work_dir=work_dir,
        experiment_name=name,
        train_dataloader=toy_loader(dict(half, part=0)),
        train_cfg=dict(type='mmsase.BilevelEpochBasedTrainLoop', max_epochs=max_epochs,
                       val_interval=1, arch_dataloader=toy_loader(dict(half, part=1))),
        val_dataloader=toy_loader(ToyImages(6, seed=1), shuffle=False),
        val_cfg=dict(type='ValLoop'),
        val_evaluator=dict(type='mmpretrain.Accuracy', topk=(1, )),
        optim_wrapper=search_optim_wrapper_cfg(WEIGHTS_LR, ARCHITECTURE_LR),
        param_scheduler=dict(
            weights=[dict(type='CosineAnnealingLR', T_max=T_MAX, eta_min=ETA_MIN,
                          by_epoch=True, begin=0, end=T_MAX)],
            architecture=[]),
        custom_hooks=[dict(type='mmsase.GenotypeLoggerHook'),
                      dict(type='mmsase.AlphaPlotHook')],
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1),
                           logger=dict(type='LoggerHook', interval=1)),
        randomness=dict(seed=7),
        resume=resume,
        # not 'mmsase': mmsase.registry.METRICS imports the missing mmsase.evaluation
        default_scope='mmpretrain',
        log_level='WARNING')


def final_state(runner):
    model = runner.model
    return model.architecture.alpha.detach().clone(), {
        k: v.clone() for k, v in model.classifier.state_dict().items()}


def test_search_runs_logs_and_resumes_exactly(tmp_path):
    straight = make_runner(str(tmp_path / 'straight'), 2, 'search_straight')
    initial_alpha = straight.model.architecture.alpha.detach().clone()
    straight.train()
    alpha, weights = final_state(straight)
    assert not torch.equal(alpha, initial_alpha)

    # schedules: weights follow the cosine, alpha's lr stays constant
    cosine = ETA_MIN + (WEIGHTS_LR - ETA_MIN) * (1 + math.cos(math.pi * 2 / T_MAX)) / 2
    assert straight.optim_wrapper['weights'].get_lr()['lr'] == [pytest.approx(cosine)]
    assert straight.optim_wrapper['architecture'].get_lr()['lr'] == [ARCHITECTURE_LR]

    # logs, validation, genotype file and plot
    hub = straight.message_hub
    assert {'train/loss_arch', 'train/loss_weights', 'val/accuracy/top1'} <= set(
        hub.log_scalars)
    assert hub.get_info('sase/alpha_history')['epochs'] == [1, 2]
    from mmsase.models.sase.genotype import load_genotype
    work_dir = straight.work_dir
    assert load_genotype(osp.join(work_dir, 'genotype.json')) == straight.model.derive()
    assert not [f for f in os.listdir(work_dir) if f.endswith('.tmp')]
    with Image.open(osp.join(work_dir, 'alpha_evolution.png')) as image:
        assert image.format == 'PNG' and image.size[0] > 500

    # stop after epoch 1, resume to epoch 2: the same alpha and weights, bit for bit
    first = make_runner(str(tmp_path / 'resumed'), 1, 'search_first_epoch')
    first.train()
    resumed = make_runner(str(tmp_path / 'resumed'), 2, 'search_resumed', resume=True)
    resumed.train()
    resumed_alpha, resumed_weights = final_state(resumed)
    assert torch.equal(resumed_alpha, alpha)
    for key, value in weights.items():
        assert torch.equal(resumed_weights[key], value), key
    assert resumed.model.derive() == straight.model.derive()
    history = resumed.message_hub.get_info('sase/alpha_history')
    assert history == hub.get_info('sase/alpha_history')


#: the recommended countermeasures (configs/sase_search/*_robust.py) on the tiny search
ROBUST = dict(warmup_epochs=1, beta_decay=dict(max_weight=25.0, centred=True),
              random_smoothing=dict(max_epsilon=0.3))


def test_search_with_countermeasures_resumes_exactly(tmp_path):
    """Warm-up, β-decay and random smoothing follow the epoch and iteration a resumed run
    restores: stopping after the warm-up epoch and resuming gives the uninterrupted result."""
    straight = make_runner(str(tmp_path / 'straight'), 3, 'robust_straight', **ROBUST)
    initial_alpha = straight.model.architecture.alpha.detach().clone()
    straight.train()
    alpha, weights = final_state(straight)
    assert not torch.equal(alpha, initial_alpha)
    scalars = straight.message_hub.log_scalars
    assert 'train/loss_beta_decay' in scalars
    # warm-up: α did not move in epoch 1 (its history records the initial weights)
    history = straight.message_hub.get_info('sase/alpha_history')['probabilities']
    assert torch.allclose(torch.tensor(history[0]), initial_alpha.softmax(-1))
    assert not torch.allclose(torch.tensor(history[1]), initial_alpha.softmax(-1))
    # genotype.json carries each operation's final weight
    import json
    with open(osp.join(straight.work_dir, 'genotype.json')) as f:
        saved = json.load(f)['_weights']
    names = straight.model.architecture.op_names
    weights_now = straight.model.architecture.probabilities().tolist()
    torch.testing.assert_close(
        torch.tensor([[saved[edge][op] for op in names[edge]] for edge in names]),
        torch.tensor(weights_now))

    first = make_runner(str(tmp_path / 'resumed'), 1, 'robust_first', **ROBUST)
    first.train()
    resumed = make_runner(str(tmp_path / 'resumed'), 3, 'robust_resumed', resume=True,
                          **ROBUST)
    resumed.train()
    resumed_alpha, resumed_weights = final_state(resumed)
    assert torch.equal(resumed_alpha, alpha)
    for key, value in weights.items():
        assert torch.equal(resumed_weights[key], value), key
