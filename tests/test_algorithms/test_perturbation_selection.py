"""DARTS-PT perturbation-based selection on tiny supernets, and tools/derive_genotype.py
--method pt in-process."""
import copy
import json
import os.path as osp

import pytest
import torch
from torch import nn

from _search_toys import single_thread  # noqa: F401 (fixture)
from _search_toys import build_search_model, toy_batch
from _tools import ROOT, load_tool
from mmsase.models.algorithms.perturbation_selection import select_by_perturbation
from mmsase.models.search_space import EDGES

pytestmark = pytest.mark.usefixtures('single_thread')


def searched_model(seed=0):
    """The tiny search model with α ~ N(0, 1), so that the operation weights differ."""
    torch.manual_seed(seed)
    model = build_search_model()
    with torch.no_grad():
        model.architecture.alpha.normal_()
    return model


def by_hand(model, batches, edge, projected=None):
    """Accuracy and loss of the supernet with each op of ``edge`` masked, written out: a copy
    of the model in train mode (BN batch statistics), its weights one-hot on the ``projected``
    edges (edge -> op) and 0 for the masked op, the classifier's 'loss' and 'predict' modes."""
    model = copy.deepcopy(model).train()
    architecture = model.architecture
    row = EDGES.index(edge)
    accuracies, losses = [], []
    for masked_op in range(len(architecture.op_names[edge])):
        def perturbed(weights, masked_op=masked_op):
            weights = weights.clone()
            for other, op in (projected or {}).items():
                other_row = EDGES.index(other)
                weights[other_row] = torch.tensor(
                    [float(name == op) for name in architecture.op_names[other]])
            weights[row, masked_op] = 0.0
            return weights

        correct = images = 0
        loss_sum = 0.0
        with torch.no_grad(), architecture.transformed(perturbed):
            for raw in batches:
                batch = model.data_preprocessor(raw, False)
                loss, _ = model.classifier.parse_losses(model.classifier(**batch, mode='loss'))
                for sample in model.classifier(**batch, mode='predict'):
                    correct += int(sample.pred_label.item() == sample.gt_label.item())
                    images += 1
                loss_sum += loss.item() * len(batch['data_samples'])
        accuracies.append(correct / images)
        losses.append(loss_sum / images)
    return accuracies, losses


def test_measurements_and_choices_match_a_hand_computation():
    model = searched_model()
    batches = [toy_batch(range(8)), toy_batch(range(8, 14))]  # unequal sizes: per image
    result = select_by_perturbation(model, batches, seed=1)

    first, second = result.edge_order[:2]
    for edge, projected in ((first, None), (second, {first: result.genotype[first]})):
        accuracies, losses = by_hand(model, batches, edge, projected)
        measured = result.measurements[edge]
        assert measured.op_names == model.architecture.op_names[edge]
        assert list(measured.accuracies) == pytest.approx(accuracies, abs=1e-9)
        assert list(measured.losses) == pytest.approx(losses, rel=1e-5)
        # lowest accuracy; among equal accuracies the larger loss
        lowest = min(accuracies)
        candidates = [j for j, acc in enumerate(accuracies) if acc == lowest]
        expected = max(candidates, key=lambda j: losses[j])
        assert measured.kept == measured.op_names[expected] == result.genotype[edge]


def test_loss_criterion_keeps_the_op_whose_masking_costs_most_loss():
    model = searched_model()
    batches = [toy_batch(range(8))]
    result = select_by_perturbation(model, batches, criterion='loss', seed=1)
    edge = result.edge_order[0]
    _, losses = by_hand(model, batches, edge)
    names = model.architecture.op_names[edge]
    assert result.genotype[edge] == names[max(range(len(names)), key=losses.__getitem__)]


class ConstantMask(nn.Module):
    """A channel-excitation op whose map is ``value`` everywhere, whatever its input."""

    def __init__(self, value: float):
        super().__init__()
        self.value = value

    def forward(self, z):
        return z.new_full((z.shape[0], z.shape[1], 1, 1), self.value)


class SupernetOnly(nn.Module):
    """A backbone that is one 3-channel supernet block on the normalised image."""

    def __init__(self):
        super().__init__()
        from mmsase.models.sase.supernet import SASESupernet
        self.block = SASESupernet(3, fused=False)

    def forward(self, x):
        return (self.block(x), )


def planted_model(decisive: int):
    """A search model where edge ce1's op ``decisive`` alone makes the classifier right.

    The toy images' class is their brightest channel, and the head is GAP + identity, so the
    classifier is right when ``y = x ⊙ (m1 + ms) / 2`` keeps the channels' order, i.e. when
    ``m1 > 0`` dominates ``ms ∈ (0, 1)``. On ce1 the decisive op outputs 1000 and every other
    op −10: with the decisive op's weight ≈ 0.09 (its α the smallest) ``m1 ≈ 92 − 9``; with it
    masked ``m1 ≈ −9`` and the order flips (accuracy 0); masking any other op changes little.
    """
    from mmsase.models.algorithms import SASESearch
    torch.manual_seed(0)
    model = SASESearch(architecture=dict(
        type='ImageClassifier',
        backbone=SupernetOnly(),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=3, in_channels=3),
        data_preprocessor=dict(type='ClsDataPreprocessor', mean=[127.5] * 3,
                               std=[64.0] * 3)))
    ops = model.classifier.backbone.block.edges['ce1'].ops
    for j, name in enumerate(model.architecture.op_names['ce1']):
        ops[name] = ConstantMask(1000.0 if j == decisive else -10.0)
    with torch.no_grad():
        model.classifier.head.fc.weight.copy_(torch.eye(3))
        model.classifier.head.fc.bias.zero_()
        model.architecture.alpha[EDGES.index('ce1')] = 0.5
        model.architecture.alpha[EDGES.index('ce1'), decisive] = 0.0
    return model


@pytest.mark.parametrize('criterion', ['acc', 'loss'])
@pytest.mark.parametrize('seed', [0, 4])  # ce1 visited 4th (0) and 1st (4)
def test_the_decisive_op_is_kept_though_its_alpha_is_the_smallest(criterion, seed):
    decisive = 2
    model = planted_model(decisive)
    name = model.architecture.op_names['ce1'][decisive]
    assert model.derive()['ce1'] != name

    result = select_by_perturbation(model, [toy_batch(range(16))], criterion, seed=seed)

    assert result.genotype['ce1'] == name
    accuracies = result.measurements['ce1'].accuracies
    assert accuracies[decisive] == 0.0
    assert all(acc == 1.0 for j, acc in enumerate(accuracies) if j != decisive)


@pytest.mark.parametrize('training', [True, False])
def test_selection_leaves_weights_buffers_alpha_and_modes_alone(training):
    model = searched_model().train(training)
    model.classifier.head.train(not training)  # mixed modes come back as they were
    state = copy.deepcopy(model.state_dict())
    modes = [module.training for module in model.modules()]

    select_by_perturbation(model, [toy_batch(range(8))])

    after = model.state_dict()
    assert list(after) == list(state)
    assert any('running_mean' in key for key in state)
    for key, value in state.items():
        assert torch.equal(after[key], value), key
    assert [module.training for module in model.modules()] == modes
    assert model.architecture.alpha.grad is None
    assert all(p.grad is None for p in model.parameters())
    assert model.architecture._transform is None


def test_edge_order_is_seeded_and_every_edge_is_fixed():
    model = searched_model()
    batches = [toy_batch(range(4))]
    results = {seed: select_by_perturbation(model, batches, seed=seed) for seed in (0, 1, 2)}
    again = select_by_perturbation(model, batches, seed=0)

    assert again.edge_order == results[0].edge_order
    assert again.genotype == results[0].genotype
    assert len({result.edge_order for result in results.values()}) > 1
    for result in results.values():
        assert sorted(result.edge_order) == sorted(EDGES)
        assert list(result.genotype) == list(EDGES)
        assert set(result.measurements) == set(EDGES)
        for edge, op in result.genotype.items():
            assert op in result.measurements[edge].op_names
            assert result.measurements[edge].kept == op


def test_tuning_trains_the_weights_only():
    model = searched_model()
    alpha = model.architecture.alpha.detach().clone()
    weights = copy.deepcopy(model.classifier.state_dict())

    result = select_by_perturbation(model, [toy_batch(range(8))], tune_iters=1,
                                    tune_batches=[toy_batch(range(8, 12))], tune_lr=0.01)

    assert set(result.genotype) == set(EDGES)
    assert torch.equal(model.architecture.alpha, alpha)
    assert model.architecture.alpha.grad is None
    changed = [key for key, value in model.classifier.state_dict().items()
               if not torch.equal(value, weights[key])]
    assert any(key.endswith('weight') for key in changed)


@pytest.mark.parametrize('kwargs, message', [
    (dict(criterion='accuracy'), "unknown criterion 'accuracy'"),
    (dict(batches=[]), 'no batches'),
    (dict(tune_iters=-1), 'tune_iters must be an int >= 0, got -1'),
    (dict(tune_iters=2, tune_lr=0.1), 'tune_iters=2 needs tune_batches'),
    (dict(tune_iters=2, tune_batches=['unused']), 'tune_iters=2 needs a positive tune_lr'),
])
def test_bad_arguments_are_named(kwargs, message):
    model = searched_model()
    kwargs = dict(dict(batches=[toy_batch(range(2))]), **kwargs)
    with pytest.raises(ValueError, match=message):
        select_by_perturbation(model, **kwargs)


def test_diverged_alpha_is_an_error():
    model = searched_model()
    with torch.no_grad():
        model.architecture.alpha[0, 0] = float('nan')
    with pytest.raises(ValueError, match='not finite'):
        select_by_perturbation(model, [toy_batch(range(2))])


# tools/derive_genotype.py --method pt, in-process, on the CPU search config shrunk to a
# ResNet-8 with 4/8/16 channels and a few digits
SEARCH = osp.join(ROOT, 'configs/demo/sase_search_resnet20_digits.py')
SMALL = {'model.architecture.backbone.depth': 8, 'model.architecture.backbone.base_channels': 4,
         'model.architecture.head.in_channels': 16}
FEW_DIGITS = {'train_cfg.arch_dataloader.batch_size': 8,
              'train_cfg.arch_dataloader.dataset.dataset.indices': 32,
              'train_dataloader.batch_size': 8, 'train_dataloader.dataset.dataset.indices': 32}


def cfg_options(options: dict) -> list:
    return ['--cfg-options'] + [f'{key}={value}' for key, value in options.items()]


@pytest.fixture(scope='module')
def small_checkpoint(tmp_path_factory):
    """A search checkpoint of the shrunk config (its weights as initialised, α ~ N(0, 1))."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from mmsase.registry import MODELS
    cfg = Config.fromfile(SEARCH)
    cfg.merge_from_dict(SMALL)
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    with torch.no_grad():
        model.architecture.alpha.normal_()
    path = str(tmp_path_factory.mktemp('pt') / 'epoch_3.pth')
    torch.save(dict(state_dict=model.state_dict(), meta=dict(epoch=3)), path)
    return path


def test_derive_genotype_pt_writes_the_kept_ops(small_checkpoint, tmp_path, capsys):
    tool = load_tool('tools/derive_genotype.py')
    out_file = str(tmp_path / 'pt.json')
    tool.main([small_checkpoint, '--method', 'pt', '--config', SEARCH, '--out', out_file,
               '--max-batches', '2', '--seed', '5', '--tune-iters', '1',
               *cfg_options(dict(SMALL, **FEW_DIGITS))])

    printed = capsys.readouterr().out
    with open(out_file) as f:
        written = json.load(f)
    genotype = {edge: written[edge] for edge in EDGES}
    assert f'genotype: {genotype}' in printed
    assert written['_method'] == 'pt' and written['_criterion'] == 'acc'
    assert written['_seed'] == 5 and written['_tune_iters'] == 1
    assert written['_images'] == 16 and written['_epoch'] == 3
    assert sorted(written['_edge_order']) == sorted(EDGES)
    for position, edge in enumerate(written['_edge_order'], 1):
        assert f'{position}. {edge:<4}' in printed
        assert f'kept {genotype[edge]}, argmax ' in printed
    assert osp.isfile(osp.splitext(out_file)[0] + '.png')


@pytest.mark.parametrize('argv, message', [
    (['--method', 'pt'], '--method pt needs --config CONFIG'),
    (['--criterion', 'loss', '--seed', '1'], '--criterion, --seed given with --method argmax'),
    (['--method', 'pt', '--config', SEARCH, '--max-batches', '0'],
     '--max-batches must be >= 1, got 0'),
    (['--method', 'pt', '--config', SEARCH, '--tune-iters', '-2'],
     '--tune-iters must be >= 0, got -2'),
])
def test_derive_genotype_rejects_bad_method_options(small_checkpoint, argv, message):
    tool = load_tool('tools/derive_genotype.py')
    with pytest.raises(ValueError, match=message):
        tool.main([small_checkpoint, *argv])


def test_derive_genotype_pt_needs_a_search_config(small_checkpoint):
    tool = load_tool('tools/derive_genotype.py')
    plain = osp.join(ROOT, 'configs/demo/cifar_resnet20_digits.py')
    with pytest.raises(ValueError, match='is not a search config'):
        tool.main([small_checkpoint, '--method', 'pt', '--config', plain])
