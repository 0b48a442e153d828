"""AutoLA's search on mmsase's engine: the same bi-level loop, architect, hooks, genotype files,
derive tool and DARTS-PT selection as SASE's, on HOGA's 10 × 9 space; its genotype loads back
into ``mmsase.AutoLA``."""
import json
import os.path as osp

import pytest
import torch
from _search_toys import single_thread  # noqa: F401 (fixture)
from _search_toys import (ToyImages, search_optim_wrapper_cfg, tiny_classifier_cfg, toy_batch,
                          toy_loader)
from _tools import run_tool
from mmengine.runner import Runner

from mmsase.models.algorithms.perturbation_selection import kept_column, select_by_perturbation
from mmsase.models.autola import AUTOLA_SPACE, PRIMITIVES, AutoLA

pytestmark = pytest.mark.usefixtures('single_thread')


@pytest.fixture(scope='module')
def searched(tmp_path_factory):
    """Two epochs of a first-order AutoLA search on a tiny CIFAR ResNet-8 (HOGA in its last,
    16-channel stage) through mmengine's Runner, as tools/train.py runs it."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    work_dir = str(tmp_path_factory.mktemp('autola_search'))
    half = dict(type='mmsase.HalfSplit', dataset=ToyImages(16), seed=0)
    runner = Runner(
        model=dict(type='mmsase.DARTSSearch', unroll=False,
                   architecture=tiny_classifier_cfg(dict(type='mmsase.AutoLASupernet'))),
        work_dir=work_dir,
        train_dataloader=toy_loader(dict(half, part=0)),
        train_cfg=dict(type='mmsase.BilevelEpochBasedTrainLoop', max_epochs=2,
                       val_interval=2, arch_dataloader=toy_loader(dict(half, part=1))),
        val_dataloader=toy_loader(ToyImages(6, seed=1), shuffle=False),
        val_cfg=dict(type='ValLoop'),
        val_evaluator=dict(type='mmpretrain.Accuracy', topk=(1, )),
        optim_wrapper=search_optim_wrapper_cfg(0.05, 3e-2),
        custom_hooks=[dict(type='mmsase.GenotypeLoggerHook'),
                      dict(type='mmsase.AlphaPlotHook')],
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1)),
        randomness=dict(seed=3), default_scope='mmpretrain', log_level='WARNING')
    initial = runner.model.architecture.alpha.detach().clone()
    runner.train()
    torch.set_num_threads(threads)
    return runner, initial


def test_the_engine_searches_autolas_space(searched):
    runner, initial = searched
    model = runner.model
    assert model.architecture.space is AUTOLA_SPACE
    assert model.num_searchable_blocks == 1 and model.architecture.alpha.shape == (10, 9)
    assert not torch.equal(model.architecture.alpha.detach(), initial)
    # α lives once, in the search model, not among the classifier's weights
    assert all(p is not model.architecture.alpha for p in model.classifier.parameters())
    work_dir = runner.work_dir
    genotype = AUTOLA_SPACE.load(osp.join(work_dir, 'genotype.json'))
    assert genotype == model.derive() and 'none' not in genotype.values()
    with open(osp.join(work_dir, 'genotype.json')) as f:
        weights = json.load(f)['_weights']
    assert list(weights) == list(AUTOLA_SPACE.edges) and list(weights['n1_g']) == list(PRIMITIVES)
    assert osp.isfile(osp.join(work_dir, 'alpha_evolution.png'))
    assert not osp.exists(osp.join(work_dir, 'genotype.png'))  # SASE's DAG only
    # the searched genotype builds the evaluated block
    block = AutoLA(16, genotype=osp.join(work_dir, 'genotype.json'))
    assert block(torch.randn(2, 16, 4, 4)).shape == (2, 16, 4, 4)


def test_derive_tool_reads_an_autola_checkpoint(searched, tmp_path):
    runner, _ = searched
    out = tmp_path / 'derived.json'
    result = run_tool('tools/derive_genotype.py', osp.join(runner.work_dir, 'epoch_2.pth'),
                      '--out', str(out), threads=1)
    assert AUTOLA_SPACE.load(out) == runner.model.derive()
    assert 'n4_n3' in result.stdout and not (tmp_path / 'derived.png').exists()


def test_perturbation_selection_never_keeps_none(searched):
    runner, _ = searched
    model = runner.model
    batches = [toy_batch(range(4), ToyImages(16))]
    alpha = model.architecture.alpha.detach().clone()
    result = select_by_perturbation(model, batches, seed=0)
    assert AUTOLA_SPACE.validate(result.genotype) == result.genotype
    assert set(result.edge_order) == set(AUTOLA_SPACE.edges)
    for measured in result.measurements.values():
        assert len(measured.accuracies) == 9 and measured.kept != 'none'
    assert torch.equal(model.architecture.alpha.detach(), alpha)
    # masking `none` hurting most still keeps the next one
    assert kept_column([0.1, 0.5, 0.3], [2.0, 1.0, 1.5], 'acc', [False, True, True]) == 2


def test_mixed_spaces_are_refused():
    """One search runs one space: a network holding supernet blocks of two is an error that
    names them, and an architecture of another space does not bind."""
    from mmsase.models.algorithms.architecture_params import (ArchitectureParams,
                                                              bind_architecture)
    from mmsase.models.algorithms.darts import _search_space
    from mmsase.models.autola import AutoLASupernet
    from mmsase.models.sase import SASESupernet
    network = torch.nn.Sequential(SASESupernet(16), AutoLASupernet(16))
    with pytest.raises(ValueError, match=r'several search spaces \(AutoLA, SASE\)'):
        _search_space(network)
    with pytest.raises(ValueError, match='no supernet block'):
        _search_space(torch.nn.Conv2d(1, 1, 1))
    with pytest.raises(ValueError, match='searches the AutoLA space'):
        bind_architecture(network[1:], ArchitectureParams())


def test_genotype_flag_reaches_autola_blocks(tmp_path):
    """tools/train.py --genotype points AutoLA blocks at the file, checked against AutoLA's
    space first (a SASE genotype is refused, naming the edges)."""
    from mmengine.config import Config

    from mmsase.models.autola import AUTHORS_GENOTYPE
    from mmsase.models.sase import save_genotype
    from mmsase.utils.launch import set_genotype
    cfg = Config.fromfile(osp.join(osp.dirname(__file__), '..', '..', 'configs', 'autola',
                                   'resnet20_autola_cifar10.py'))
    path = str(tmp_path / 'autola.json')
    AUTOLA_SPACE.save(dict(AUTHORS_GENOTYPE, n1_g='CBAM'), path)
    assert set_genotype(cfg, path) == 1 and cfg.model.backbone.attention.genotype == path
    sase = str(tmp_path / 'sase.json')
    save_genotype({'cs': 'gap', 'ce1': 'fc', 'ce2': 'fc', 'ss1': 'gap', 'ss2': 'gap',
                   'se': 'conv_3'}, sase)
    with pytest.raises(ValueError, match=r"unknown edge\(s\) 'cs'.*AutoLA"):
        set_genotype(cfg, sase)
