"""The moment ops of a squeeze edge as one node (C++ kernel): equal to the ops applied one by
one — value, every gradient, BatchNorm buffers — in training and inference, along both axes."""
import copy

import pytest
import torch
import torch.nn as nn

from mmsase.models.sase.supernet import MixedOp
from mmsase.models.search_space import moment_mixture as mm
from mmsase.models.search_space.mixture import squeeze_mixture, weighted_sum
from mmsase.models.search_space.squeeze import GAPStdSqueeze
from mmsase.models.search_space.statistics import FeatureStats


@pytest.fixture(scope='module', autouse=True)
def kernel():
    assert mm.EXTENSION.load() is not None, 'the moment-mixture kernel failed to build'


def lively_mixed_op(edge, channels, seed=0):
    torch.manual_seed(seed)
    mixed = MixedOp(edge, channels).double().train()
    with torch.no_grad():
        for p in mixed.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    return mixed


def assert_same_buffers(mixed, reference):
    """The BatchNorm running statistics (and batch counts) of the two ops agree."""
    for (name, buf), ref_buf in zip(mixed.named_buffers(), reference.buffers()):
        torch.testing.assert_close(buf, ref_buf, rtol=1e-12, atol=1e-14, msg=name)

def run(mixed, x, weights, fused, scale=None):
    """The mixture's value and its gradients with respect to x, weights, parameters."""
    stats = FeatureStats(x, channel_scale=scale, one_sweep=fused)
    ops = list(mixed.ops.values())
    out = squeeze_mixture(ops, stats, weights) if fused else weighted_sum(
        [op(stats) for op in ops], weights)
    inputs = [x, weights] + list(mixed.parameters())
    grads = torch.autograd.grad((out * torch.linspace(-1, 2, out.numel()).view_as(out).double())
                                .sum(), inputs)
    return out, grads


@pytest.mark.parametrize('edge', ['cs', 'ss1', 'ss2'])
@pytest.mark.parametrize('training', [True, False])
def test_moment_mixture_equals_the_ops_one_by_one(edge, training, monkeypatch):
    calls = []
    original = mm._MomentMixture.forward
    monkeypatch.setattr(mm._MomentMixture, 'forward',
                        staticmethod(lambda *a: calls.append(1) or original(*a)))
    mixed = lively_mixed_op(edge, 8).train(training)
    reference = copy.deepcopy(mixed)
    if not training:  # non-trivial running statistics
        for m in (mixed, reference):
            for bn in m.modules():
                if isinstance(bn, nn.BatchNorm2d | nn.BatchNorm1d):
                    bn.running_mean.fill_(0.2)
                    bn.running_var.fill_(1.7)
    x = (torch.randn(3, 8, 5, 6, dtype=torch.float64) + 0.4).requires_grad_()
    weights = torch.randn(7, dtype=torch.float64).softmax(0).requires_grad_()
    scale = torch.rand(3, 8, 1, 1, dtype=torch.float64) + 0.5 if edge == 'ss2' else None
    out, grads = run(mixed, x, weights, True, scale)
    ref, ref_grads = run(reference, x, weights, False, scale)
    assert calls, 'the kernel did not run'
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    names = ['x', 'weights'] + [n for n, _ in mixed.named_parameters()]
    for name, g, r in zip(names, grads, ref_grads):
        # a bias before a training-mode BN has a gradient of zero up to rounding
        atol = 1e-10 if name.endswith('bias') else 1e-12
        torch.testing.assert_close(g, r, rtol=1e-9, atol=atol, msg=name)
    assert_same_buffers(mixed, reference)


def test_cumulative_batch_norm_statistics_are_updated_like_the_modules():
    mixed = lively_mixed_op('cs', 6, seed=1)
    for bn in mixed.modules():
        if isinstance(bn, nn.BatchNorm1d):
            bn.momentum = None  # cumulative moving average
    reference = copy.deepcopy(mixed)
    weights = torch.full((7, ), 1 / 7, dtype=torch.float64)
    for step in range(3):
        x = torch.randn(4, 6, 3, 3, dtype=torch.float64) + step
        run(mixed, x.requires_grad_(), weights.requires_grad_(), True)
        run(reference, x, weights, False)
    assert_same_buffers(mixed, reference)


def test_float32_input_matches_float64():
    mixed = lively_mixed_op('ss1', 8, seed=2)
    x = torch.randn(4, 8, 6, 6, dtype=torch.float64) + 0.3
    weights = torch.randn(7, dtype=torch.float64).softmax(0)
    mixed32 = copy.deepcopy(mixed).float()
    out64, _ = run(mixed, x.clone().requires_grad_(), weights.clone().requires_grad_(), True)
    stats = FeatureStats(x.float(), one_sweep=True)
    out32 = squeeze_mixture(list(mixed32.ops.values()), stats, weights.float())
    assert out32.dtype == torch.float32
    torch.testing.assert_close(out32.double(), out64, rtol=1e-4, atol=1e-5)


class StdTimesTwo(GAPStdSqueeze):
    axis = 'space'

    def second(self, moments):
        return 2 * moments.std


def test_which_ops_it_takes_over():
    mixed = MixedOp('cs', 8)
    found = mm.find_moment_ops(list(mixed.ops.values()))
    assert found.mean == [0] and found.l4 == [3]
    assert found.fusions == [(4, 'max'), (5, 'std'), (6, 'skew')]
    # a subclass that computes differently runs on its own
    ops = list(mixed.ops.values())[:5] + [StdTimesTwo(8)]
    assert mm.find_moment_ops(ops).fusions == [(4, 'max')]


def test_falls_back_where_it_does_not_apply():
    x = torch.randn(2, 8, 4, 4, dtype=torch.float64)
    weights = torch.full((7, ), 1 / 7, dtype=torch.float64)
    mixed = lively_mixed_op('cs', 8)
    ops = list(mixed.ops.values())
    assert mm.moment_mixture(ops, FeatureStats(x), weights) is None  # no one-sweep moments
    ops[5].train(False)  # BatchNorms in different modes
    assert mm.moment_mixture(ops, FeatureStats(x, one_sweep=True), weights) is None
    ops[5].train(True)
    ops[6].fusion.bn.affine = False
    assert mm.moment_mixture(ops, FeatureStats(x, one_sweep=True), weights) is None
    one = lively_mixed_op('cs', 1)  # one value per BatchNorm in training: the module's error
    x1 = torch.randn(1, 1, 4, 4, dtype=torch.float64)
    ops1 = list(one.ops.values())
    assert mm.moment_mixture(ops1, FeatureStats(x1, one_sweep=True), weights) is None
    with pytest.raises(ValueError, match='more than 1 value per channel'):
        squeeze_mixture(ops1, FeatureStats(x1, one_sweep=True), weights)


def test_falls_back_when_the_kernel_cannot_be_built(monkeypatch):
    import torch.utils.cpp_extension as cpp_extension

    def broken_load(*args, **kwargs):
        raise RuntimeError('Error building extension: no compiler')

    monkeypatch.setattr(mm.EXTENSION, '_module', None)
    monkeypatch.setattr(mm.EXTENSION, 'failed', False)
    monkeypatch.setattr(cpp_extension, 'load', broken_load)
    mixed = lively_mixed_op('ss1', 8, seed=5)
    reference = copy.deepcopy(mixed)
    x = torch.randn(2, 8, 5, 5, dtype=torch.float64).requires_grad_()
    weights = torch.randn(7, dtype=torch.float64).softmax(0).requires_grad_()
    out, grads = run(mixed, x, weights, True)
    ref, ref_grads = run(reference, x, weights, False)
    assert mm.EXTENSION.failed
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g, r, rtol=1e-9, atol=1e-10)
