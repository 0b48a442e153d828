"""The SASE supernet (spec §4): mixed ops, shared architecture logits, derivation."""
import copy
import re

import pytest
import torch
import torch.nn as nn

from mmsase.models.sase import (PAPER_GENOTYPE, SASE, ArchitectureParams, MixedOp,
                                SASESupernet, bind_architecture, random_genotype)
from mmsase.models.search_space import EDGE_OP_SET, EDGES, OP_SETS, FeatureStats, weighted_sum

from .helpers import randomize_, single_thread  # noqa: F401 (autouse fixture)

C = 8


def input_for(set_name, dtype=torch.float64):
    shape = {'channel_squeeze': (2, C, 5, 6), 'spatial_squeeze': (2, C, 5, 6),
             'channel_excitation': (2, C, 1, 1), 'spatial_excitation': (2, 1, 5, 6)}[set_name]
    return torch.randn(shape, dtype=dtype)


# ---------------------------------------------------------------------------------------------
# ArchitectureParams
# ---------------------------------------------------------------------------------------------
def test_architecture_params_shape_and_init():
    torch.manual_seed(0)
    arch = ArchitectureParams()
    assert arch.alpha.shape == (6, 7) and arch.alpha.requires_grad
    assert [n for n, _ in arch.named_parameters()] == ['alpha']
    assert 0.5e-3 < arch.alpha.std().item() < 2e-3  # N(0, 0.001²)
    assert arch.alpha.abs().max().item() < 1e-2
    probs = arch.probabilities()
    torch.testing.assert_close(probs.sum(-1), torch.ones(6))
    torch.testing.assert_close(probs, torch.full((6, 7), 1 / 7), atol=1e-3, rtol=0)


def architecture_favouring(genotype, noise_std, logit):
    """``ArchitectureParams`` with ``α ~ N(0, noise_std²)`` and ``logit`` on each edge's op of
    ``genotype``."""
    arch = ArchitectureParams()
    with torch.no_grad():
        arch.alpha.normal_(0, noise_std)
        for i, edge in enumerate(EDGES):
            arch.alpha[i, list(OP_SETS[EDGE_OP_SET[edge]]).index(genotype[edge])] = logit
    return arch


def test_derive_picks_the_argmax_of_every_edge():
    genotype = random_genotype(11)
    arch = architecture_favouring(genotype, noise_std=0.01, logit=0.5)
    assert arch.derive() == genotype
    arch.set_genotype(PAPER_GENOTYPE)
    assert arch.derive() == dict(PAPER_GENOTYPE)
    assert (arch.probabilities().max(-1).values >= 1 - 1e-6).all()


def test_table_gives_every_weight_and_marks_the_derived_op():
    genotype = random_genotype(12)
    arch = architecture_favouring(genotype, noise_std=0.3, logit=2.0)
    lines = arch.table().splitlines()
    assert [line.split()[0] for line in lines] == list(EDGES)
    probabilities = arch.probabilities()
    for i, (edge, line) in enumerate(zip(EDGES, lines)):
        cells = line.split()[1:]
        names, weights = cells[0::2], [float(w) for w in cells[1::2]]
        assert [n.lstrip('*') for n in names] == list(OP_SETS[EDGE_OP_SET[edge]])
        assert [n for n in names if n.startswith('*')] == ['*' + genotype[edge]]
        torch.testing.assert_close(torch.tensor(weights), probabilities[i], atol=5e-5, rtol=0)
    cell_starts = [[m.start() for m in re.finditer(r'[ *]\w+ \d\.\d{4}', line)]
                   for line in lines]
    assert all(starts == cell_starts[0] for starts in cell_starts)  # columns line up
    assert len(cell_starts[0]) == 7


def test_derive_refuses_a_diverged_alpha():
    arch = ArchitectureParams()
    with torch.no_grad():
        arch.alpha[2, 3] = float('nan')
        arch.alpha[5, 0] = float('inf')
    with pytest.raises(ValueError, match=r"edge\(s\) \['ce2', 'se'\] is not finite"):
        arch.derive()


# ---------------------------------------------------------------------------------------------
# MixedOp
# ---------------------------------------------------------------------------------------------
def test_weighted_sum():
    outs = [torch.full((2, 3), float(k)) for k in range(4)]
    w = torch.tensor([0.1, 0.2, 0.3, 0.4])
    torch.testing.assert_close(weighted_sum(outs, w), torch.full((2, 3), 0.2 + 0.6 + 1.2))


@pytest.mark.parametrize('set_name', list(OP_SETS))
def test_mixed_op_is_the_weighted_sum_of_its_ops(set_name):
    mixed = randomize_(MixedOp(set_name, C), 0).double().eval()
    assert list(mixed.ops) == list(OP_SETS[set_name])
    x = input_for(set_name)
    w = torch.rand(7, dtype=torch.float64).softmax(0)
    expected = sum(w[k] * op(x) for k, op in enumerate(mixed.ops.values()))
    with torch.no_grad():
        for fused in (True, False):
            torch.testing.assert_close(mixed(x, w, fused=fused), expected, rtol=1e-10,
                                       atol=1e-12)


@pytest.mark.parametrize('set_name', list(OP_SETS))
def test_mixed_op_fused_and_reference_gradients_agree(set_name):
    mixed = randomize_(MixedOp(set_name, C), 1).double().train()
    x = input_for(set_name).requires_grad_()
    w = torch.rand(7, dtype=torch.float64, requires_grad=True)
    grads = []
    for fused in (False, True):
        mixed.zero_grad()
        x.grad = w.grad = None
        mixed(x, w, fused=fused).square().sum().backward()
        grads.append([x.grad.clone(), w.grad.clone()] +
                     [p.grad.clone() for p in mixed.parameters()])
    for ref, fused in zip(*grads):
        torch.testing.assert_close(fused, ref, rtol=1e-9, atol=1e-12)


def test_mixed_op_checks_weights_and_names():
    mixed = MixedOp('cs', C)
    assert mixed.op_set == 'channel_squeeze'
    with pytest.raises(ValueError, match=r'expects 7 weights, got shape \(6,\)'):
        mixed(torch.randn(1, C, 3, 3), torch.ones(6))
    with pytest.raises(KeyError, match="'channel_squash'"):
        MixedOp('channel_squash', C)
    with pytest.raises(ValueError, match='reference path takes a tensor'):
        mixed(FeatureStats(torch.randn(1, C, 3, 3)), torch.ones(7) / 7, fused=False)


# ---------------------------------------------------------------------------------------------
# The supernet block
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize('shape', [(2, C, 5, 6), (1, C, 7, 7), (2, C, 13, 17)])
def test_supernet_output_shape(shape):
    net = SASESupernet(C)
    for training in (True, False):
        y = net.train(training)(torch.randn(shape))
        assert y.shape == shape and torch.isfinite(y).all()


@pytest.mark.parametrize('dtype,tol', [(torch.float64, 1e-10), (torch.float32, 1e-5)])
def test_supernet_fused_path_equals_reference(dtype, tol):
    net = randomize_(SASESupernet(C), 2).to(dtype).eval()
    x = torch.randn(2, C, 7, 9, dtype=dtype)
    with torch.no_grad():
        torch.testing.assert_close(net(x, fused=True), net(x, fused=False), rtol=tol, atol=tol)


def test_supernet_fused_gradients_equal_reference():
    net = randomize_(SASESupernet(C), 3).double().train()
    x = torch.randn(2, C, 5, 6, dtype=torch.float64, requires_grad=True)
    grads = []
    for fused in (False, True):
        net.zero_grad()
        x.grad = None
        net(x, fused=fused).square().sum().backward()
        assert net.arch.alpha.grad.abs().sum() > 0
        grads.append([x.grad.clone()] + [p.grad.clone() for p in net.parameters()])
    for ref, fused in zip(*grads):
        torch.testing.assert_close(fused, ref, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize('block', ['supernet', 'paper genotype'])
def test_a_pass_is_freed_without_the_garbage_collector(block):
    """No reference cycle outlives a forward/backward pass: the statistics objects of the
    squeeze ops (and the tensors and autograd graph they hold) go as soon as the pass ends,
    not when the garbage collector next runs. (A cycle between ``FeatureStats`` and its
    ``AxisMoments`` once kept each search iteration's activations alive.)"""
    import gc

    from mmsase.models.search_space.statistics import AxisMoments
    net = (SASESupernet(C) if block == 'supernet' else SASE(C, genotype=PAPER_GENOTYPE))
    x = torch.randn(2, C, 5, 6, requires_grad=True)

    def run_pass(training, fused):
        net.train(training)
        y = net(x) if block != 'supernet' else net(x, fused=fused)
        if training:
            y.square().sum().backward()

    passes = ((True, False), (False, False), (False, True))
    for setting in passes:  # first use: kernels are loaded, caches filled
        run_pass(*setting)
    gc.collect()
    gc.disable()
    try:
        for setting in passes:
            run_pass(*setting)
            alive = [type(o).__name__ for o in gc.get_objects()
                     if isinstance(o, (FeatureStats, AxisMoments))]
            assert alive == [], (setting, alive)
            gc.set_debug(gc.DEBUG_SAVEALL)
            try:
                gc.collect()
                cyclic = [type(o).__name__ for o in gc.garbage]
                held = [tuple(o.shape) for o in gc.garbage if isinstance(o, torch.Tensor)]
            finally:
                gc.set_debug(0)
                gc.garbage.clear()
            assert held == [], (setting, held, cyclic)  # no other cycle holds a tensor
    finally:
        gc.enable()


def test_supernet_gradcheck_including_alpha():
    net = randomize_(SASESupernet(C), 4).double().train()
    x = torch.randn(1, C, 3, 4, dtype=torch.float64, requires_grad=True)

    def f(x, alpha):
        return torch.func.functional_call(net, {'arch.alpha': alpha}, (x, ))

    alpha = net.arch.alpha.detach().clone().requires_grad_()
    assert torch.autograd.gradcheck(f, (x, alpha), fast_mode=True)


@pytest.mark.parametrize('genotype_seed', [None, 1, 2, 3])
def test_one_hot_alpha_supernet_equals_exported_fixed_block(genotype_seed):
    genotype = dict(PAPER_GENOTYPE) if genotype_seed is None else random_genotype(genotype_seed)
    net = randomize_(SASESupernet(C), 5).double().eval()
    net.arch.set_genotype(genotype, logit=40.0)
    fixed = net.export_fixed_block()
    assert isinstance(fixed, SASE) and fixed.genotype == genotype and not fixed.training
    assert fixed.fuse.conv.weight.dtype == torch.float64
    x = torch.randn(2, C, 6, 7, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(net(x), fixed(x), rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(net(x, fused=False), fixed(x, fast=False), rtol=1e-10,
                                   atol=1e-12)


def test_fixed_block_state_is_a_renamed_subset_of_the_supernet_state():
    net = SASESupernet(C)
    genotype = random_genotype(4)
    fixed = SASE(C, genotype)
    supernet_state = net.state_dict()

    def supernet_key(key):
        parts = key.split('.')
        if parts[0] == 'edges':
            parts[2:2] = ['ops', genotype[parts[1]]]
        return '.'.join(parts)

    for key, value in fixed.state_dict().items():
        assert supernet_state[supernet_key(key)].shape == value.shape, key
    # and export_fixed_block copies exactly those tensors
    exported = net.export_fixed_block(genotype)
    for key, value in exported.state_dict().items():
        assert torch.equal(value, supernet_state[supernet_key(key)]), key


def test_derive_on_the_block():
    net = SASESupernet(C)
    net.arch.set_genotype(random_genotype(9))
    assert net.derive() == random_genotype(9)
    assert net.export_fixed_block().genotype == random_genotype(9)


# ---------------------------------------------------------------------------------------------
# Sharing alpha between blocks
# ---------------------------------------------------------------------------------------------
class Search(nn.Module):
    """What a search algorithm looks like: a network plus the alpha it owns."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(SASESupernet(C), nn.ReLU(), SASESupernet(C))
        self.architecture = ArchitectureParams()
        self.num_bound = bind_architecture(self.net, self.architecture)


def test_standalone_block_owns_a_registered_alpha():
    net = SASESupernet(C)
    assert not net.is_bound
    assert 'arch.alpha' in net.state_dict()
    assert any(p is net.arch.alpha for p in net.parameters())


def test_alpha_is_shared_and_held_apart_from_the_weights():
    search = Search()
    assert search.num_bound == 2
    alpha = search.architecture.alpha
    blocks = [search.net[0], search.net[2]]
    assert all(b.arch is search.architecture and b.is_bound for b in blocks)
    # the network's parameters and state hold the weights only
    assert not any(p is alpha for p in search.net.parameters())
    assert not any('alpha' in k for k in search.net.state_dict())
    # the owner holds alpha exactly once
    assert sum(p is alpha for p in search.parameters()) == 1
    assert [k for k in search.state_dict() if 'alpha' in k] == ['architecture.alpha']


def test_gradient_reaches_alpha_from_every_block():
    search = Search()
    alpha = search.architecture.alpha
    x = torch.randn(2, C, 5, 5)
    per_block = []
    for block in (search.net[0], search.net[2]):
        alpha.grad = None
        block(x).square().sum().backward()
        assert alpha.grad is not None and alpha.grad.abs().sum() > 0
        per_block.append(alpha.grad.clone())
    alpha.grad = None
    (search.net[0](x).square().sum() + search.net[2](x).square().sum()).backward()
    torch.testing.assert_close(alpha.grad, per_block[0] + per_block[1])


def test_binding_in_the_constructor_and_rebinding():
    shared = ArchitectureParams()
    a, b = SASESupernet(C, arch=shared), SASESupernet(C)
    assert a.arch is shared and a.is_bound and 'arch.alpha' not in a.state_dict()
    b.bind(shared)
    assert b.arch is shared and not any('arch' in n for n, _ in b.named_modules())
    with pytest.raises(TypeError, match='ArchitectureParams'):
        b.bind(nn.Linear(2, 2))


def test_deepcopy_keeps_one_shared_alpha_per_copy():
    search = copy.deepcopy(Search())
    blocks = [search.net[0], search.net[2]]
    assert blocks[0].arch is blocks[1].arch is search.architecture


def test_supernet_in_channels_is_validated():
    with pytest.raises(ValueError, match='in_channels must be a positive int, got 0'):
        SASESupernet(0)
