"""The supernet's C++ kernels: weighted power sums (squeeze edges) and batched one-channel
convolutions (excitation edges), checked against torch references, by gradcheck, and inside
the supernet against its literal reference path."""
import logging

import pytest
import torch
import torch.nn.functional as F

from mmsase.models.sase.supernet import MixedOp, SASESupernet
from mmsase.models.search_space import EDGES
from mmsase.models.search_space import conv_stacks as cs
from mmsase.models.search_space import moment_mixture as mm
from mmsase.models.search_space import power_sums as ps
from mmsase.models.search_space.statistics import FeatureStats


@pytest.fixture(scope='module', autouse=True)
def kernels():
    assert ps.EXTENSION.load() is not None, 'the power-sum kernel failed to build'
    assert cs.EXTENSION.load() is not None, 'the convolution kernel failed to build'


def reference_sums(x, chan_w, chan_pow, space_w, space_pow):
    b, c = x.shape[:2]
    flat = x.reshape(b, c, -1)
    chan = torch.stack([(chan_w[:, j, :, None] * flat**k).sum(1) for j, k in enumerate(chan_pow)],
                       1)
    space = torch.stack(
        [(space_w[:, j, None, :] * flat**k).sum(2) for j, k in enumerate(space_pow)], 1)
    return chan, space


@pytest.mark.parametrize('shape', [(3, 5, 4, 3), (2, 3, 20, 15)])  # one chunk, two chunks
def test_power_sums_values_and_maxima(shape):
    torch.manual_seed(0)
    b, c, h, w = shape
    x = torch.randn(shape, dtype=torch.float64)
    chan = ps.Rows(torch.randn(b, 4, c, dtype=torch.float64), (1, 2, 3, 4))
    space = ps.Rows(torch.randn(b, 3, h * w, dtype=torch.float64), (1, 2, 4))
    scale = torch.rand(b, c, dtype=torch.float64)
    out = ps.power_sums(x, chan, space, chan_max=True, chan_max_scale=scale, space_max=True)
    ref_chan, ref_space = reference_sums(x, chan.weights, chan.powers, space.weights,
                                         space.powers)
    torch.testing.assert_close(out.chan, ref_chan, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(out.space, ref_space, rtol=1e-12, atol=1e-12)
    flat = x.reshape(b, c, -1)
    torch.testing.assert_close(out.chan_max, (scale[..., None] * flat).amax(1))
    torch.testing.assert_close(out.space_max, flat.amax(2))


@pytest.mark.parametrize('shape', [(2, 4, 3, 5), (2, 3, 20, 15)])
def test_power_sums_gradcheck(shape):
    torch.manual_seed(1)
    b, c, h, w = shape
    x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    chan_w = torch.randn(b, 3, c, dtype=torch.float64, requires_grad=True)
    space_w = torch.randn(b, 2, h * w, dtype=torch.float64, requires_grad=True)
    scale = torch.rand(b, c, dtype=torch.float64, requires_grad=True)

    def fn(x, chan_w, space_w, scale):
        out = ps.power_sums(x, ps.Rows(chan_w, (1, 3, 4)), ps.Rows(space_w, (2, 1)),
                            chan_max=True, chan_max_scale=scale, space_max=True)
        return tuple(out)

    assert torch.autograd.gradcheck(fn, (x, chan_w, space_w, scale))


def test_power_sums_float32_input_matches_float64():
    torch.manual_seed(2)
    x = torch.randn(4, 6, 9, 11)
    rows = ps.uniform_rows(4, 6, x)
    x32 = x.clone().requires_grad_()
    x64 = x.double().requires_grad_()
    s32 = ps.power_sums(x32, rows, chan_max=True)
    s64 = ps.power_sums(x64, rows, chan_max=True)
    assert s32.chan.dtype == torch.float64 and s32.chan_max.dtype == torch.float32
    torch.testing.assert_close(s32.chan, s64.chan, rtol=1e-12, atol=1e-12)  # exact sums
    (s32.chan.sum() + s32.chan_max.sum()).backward()
    (s64.chan.sum() + s64.chan_max.sum()).backward()
    assert x32.grad.dtype == torch.float32
    torch.testing.assert_close(x32.grad.double(), x64.grad, rtol=1e-6, atol=1e-6)


def test_power_sums_max_gradient_goes_to_the_first_tie_like_torch_max():
    x = torch.tensor([[[[1.0, 3.0], [3.0, 2.0]], [[3.0, 0.0], [3.0, -1.0]]]],
                     dtype=torch.float64, requires_grad=True)
    out = ps.power_sums(x, chan_max=True, space_max=True)
    (out.chan_max.sum() + out.space_max.sum()).backward()
    ref = x.detach().clone().requires_grad_()
    flat = ref.flatten(2)
    (flat.max(1).values.sum() + flat.max(2).values.sum()).backward()
    torch.testing.assert_close(x.grad, ref.grad)


def test_power_sums_rejects_bad_rows():
    x = torch.randn(2, 3, 4, 4)
    with pytest.raises(ValueError, match=r'chan weights must have shape \(2, 1, 3\)'):
        ps.power_sums(x, ps.Rows(torch.ones(2, 1, 4), (1, )))
    with pytest.raises(ValueError, match='powers must be 1..4'):
        ps.power_sums(x, ps.Rows(torch.ones(2, 1, 3), (5, )))


@pytest.mark.parametrize('edge,shape', [('se', (3, 1, 9, 7)), ('ce1', (3, 12, 1, 1)),
                                        ('se', (2, 1, 1, 1))])
def test_conv_stacks_equal_the_ops_logits(edge, shape):
    torch.manual_seed(3)
    mix = MixedOp(edge, shape[1]).double()
    with torch.no_grad():
        for p in mix.parameters():
            p.normal_()
    stacks = [op for op in mix.ops.values() if hasattr(op, 'convs')]
    assert len(stacks) in (5, 6)
    v = torch.randn(shape, dtype=torch.float64)
    assert cs.conv_stacks_apply(stacks, v)
    logits = cs.conv_stack_logits(stacks, v)
    torch.testing.assert_close(logits, torch.stack([op.logits(v) for op in stacks]),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize('edge,shape', [('se', (2, 1, 6, 5)), ('ce1', (2, 9, 1, 1))])
def test_conv_stacks_gradcheck(edge, shape):
    torch.manual_seed(4)
    stacks = [op for op in MixedOp(edge, shape[1]).double().ops.values() if hasattr(op, 'convs')]
    convs = [conv for op in stacks for conv in op.convs]
    shapes = [tuple(conv.weight.shape[2:]) for conv in convs]
    structure = ([s[0] if len(s) == 2 else 1 for s in shapes], [s[-1] for s in shapes],
                 [conv.bias is not None for conv in convs], [len(op.convs) for op in stacks],
                 [op.relu_between for op in stacks])
    weights = [torch.randn_like(c.weight).requires_grad_() for c in convs]
    biases = [torch.randn_like(c.bias).requires_grad_() for c in convs if c.bias is not None]
    h = torch.randn(shape[0], 1, 1, shape[1], dtype=torch.float64) if edge == 'ce1' else \
        torch.randn(shape, dtype=torch.float64)
    h.requires_grad_()
    assert torch.autograd.gradcheck(
        lambda h, *params: cs._ConvStacks.apply(h, structure, len(weights), *params),
        (h, *weights, *biases))


@pytest.mark.parametrize('edge,shape', [('se', (4, 1, 9, 7)), ('ce1', (4, 12, 1, 1)),
                                        ('se', (3, 1, 1, 1))])
def test_excitation_mixture_batched_equals_op_by_op(edge, shape):
    torch.manual_seed(5)
    mix = MixedOp(edge, shape[1]).double()
    with torch.no_grad():
        for p in mix.parameters():
            p.normal_()
    v = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    weights = torch.randn(7, dtype=torch.float64).softmax(0).requires_grad_()
    params = [v, weights] + list(mix.parameters())
    fused = mix(v, weights, fused=True)
    grads = torch.autograd.grad(fused.square().sum(), params)
    ref = mix(v, weights, fused=False)
    ref_grads = torch.autograd.grad(ref.square().sum(), params)
    torch.testing.assert_close(fused, ref, rtol=1e-12, atol=1e-12)
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g, r, rtol=1e-10, atol=1e-12)


def lively_supernet(c, seed=0):
    torch.manual_seed(seed)
    block = SASESupernet(c).double().train()
    with torch.no_grad():
        block.arch.alpha.normal_()
        for p in block.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return block


@pytest.mark.parametrize('shape', [(4, 16, 8, 8), (3, 12, 5, 7), (2, 8, 24, 20)])
def test_one_sweep_supernet_equals_reference_in_value_and_gradient(shape):
    block = lively_supernet(shape[1])
    x = (torch.randn(shape, dtype=torch.float64) + 0.5).requires_grad_()
    params = [x, block.arch.alpha] + list(block.parameters())
    out = block(x, fused=True)
    grads = torch.autograd.grad(out.square().sum(), params)
    ref = block(x, fused=False)
    ref_grads = torch.autograd.grad(ref.square().sum(), params)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    names = ['x', 'alpha'] + [n for n, _ in block.named_parameters()]
    for name, g, r in zip(names, grads, ref_grads):
        # a bias before a training-mode BN has a gradient of zero up to rounding
        atol = 1e-9 if name.endswith('bias') else 1e-12
        torch.testing.assert_close(g, r, rtol=1e-9, atol=atol, msg=name)


def test_squeeze_edges_of_a_block_share_three_sweeps(monkeypatch):
    """Source moments; cs and ss1 std_l2 sums together; ss2 moments with its std_l2 sums."""
    calls = []
    original = ps._PowerSums.forward

    def counting(ctx, *args):
        calls.append(args[0].shape)
        return original(ctx, *args)

    monkeypatch.setattr(ps._PowerSums, 'forward', staticmethod(counting))
    block = lively_supernet(8)
    block(torch.randn(2, 8, 6, 6, dtype=torch.float64))
    assert len(calls) == 3


def test_disabled_kernels_give_the_same_supernet(monkeypatch):
    block = lively_supernet(8, seed=3)
    x = torch.randn(2, 8, 6, 5, dtype=torch.float64)
    fast = block(x)
    monkeypatch.setenv(ps.DISABLE_ENV, '1')
    calls = []
    monkeypatch.setattr(ps._PowerSums, 'forward', staticmethod(lambda *a: calls.append(a)))
    monkeypatch.setattr(cs._ConvStacks, 'forward', staticmethod(lambda *a: calls.append(a)))
    monkeypatch.setattr(mm._MomentMixture, 'forward', staticmethod(lambda *a: calls.append(a)))
    torch.testing.assert_close(block(x), fast, rtol=1e-12, atol=1e-12)
    assert calls == []


def test_supernet_falls_back_when_the_kernels_cannot_be_built(monkeypatch, caplog):
    import torch.utils.cpp_extension as cpp_extension

    def broken_load(*args, **kwargs):
        raise RuntimeError('Error building extension: no compiler')

    for ext in (ps.EXTENSION, cs.EXTENSION):
        monkeypatch.setattr(ext, '_module', None)
        monkeypatch.setattr(ext, 'failed', False)
    monkeypatch.setattr(cpp_extension, 'load', broken_load)
    block = lively_supernet(8, seed=4)
    x = torch.randn(2, 8, 5, 5, dtype=torch.float64)
    with caplog.at_level(logging.WARNING):
        out = block(x)
        block(x)
    warnings = [r for r in caplog.records if 'no compiler' in r.getMessage()]
    assert len(warnings) == 2  # one per kernel, once
    torch.testing.assert_close(out, block(x, fused=False), rtol=1e-10, atol=1e-12)


def test_one_sweep_feature_stats_equal_the_lazy_ones():
    torch.manual_seed(6)
    x = torch.randn(3, 10, 6, 7, dtype=torch.float64) + 0.3
    m = torch.rand(3, 10, 1, 1, dtype=torch.float64)
    sweep = FeatureStats(x, one_sweep=True)
    cases = [(sweep, FeatureStats(x)),
             (FeatureStats(x, channel_scale=m, one_sweep=True, parent=sweep),
              FeatureStats(x * m)),
             (FeatureStats(x, channel_scale=m, one_sweep=True), FeatureStats(x * m))]
    for fast, lazy in cases:
        for axis in ('space', 'channel'):
            a, b = fast.over(axis), lazy.over(axis)
            assert a.one_sweep
            for name in ('mean', 'var', 'std', 'skew', 'l4'):
                torch.testing.assert_close(getattr(a, name), getattr(b, name), rtol=1e-10,
                                           atol=1e-12, msg=f'{axis} {name}')
            if axis == 'channel' or fast.channel_scale is None:
                torch.testing.assert_close(a.amax, b.amax)


def test_feature_stats_parent_must_match():
    x = torch.randn(2, 3, 4, 4)
    with pytest.raises(ValueError, match='parent must be the unscaled FeatureStats'):
        FeatureStats(x, channel_scale=torch.rand(2, 3, 1, 1), parent=FeatureStats(x.clone()))


def test_every_edge_of_the_block_reaches_the_kernels(monkeypatch):
    seen = set()
    for name, module in (('power_sums', ps._PowerSums), ('conv_stacks', cs._ConvStacks),
                         ('moment_mixture', mm._MomentMixture)):
        original = module.forward

        def spy(ctx, *args, _name=name, _original=original):
            seen.add(_name)
            return _original(ctx, *args)

        monkeypatch.setattr(module, 'forward', staticmethod(spy))
    block = SASESupernet(8)
    assert len(EDGES) == 6
    block(torch.randn(2, 8, 6, 6)).sum().backward()
    assert seen == {'power_sums', 'conv_stacks', 'moment_mixture'}


@pytest.mark.parametrize('hw', [(32, 32), (16, 24), (8, 8), (13, 17), (4, 4)])
def test_grid_pool_is_adaptive_average_pooling(hw):
    from mmsase.models.search_space.pooling import grid_pool
    x = torch.randn(2, 3, *hw, dtype=torch.float64, requires_grad=True)
    assert_same_value_and_gradient(x, grid_pool(x, 8), F.adaptive_avg_pool2d(x, 8))


def assert_same_value_and_gradient(x, out, ref):
    """``out`` equals ``ref`` (both functions of ``x``), and so do their gradients w.r.t.
    ``x`` for a random upstream gradient (float64, 1e-12)."""
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    g = torch.randn_like(ref)
    (grad, ), (ref_grad, ) = (torch.autograd.grad(y, x, g) for y in (out, ref))
    torch.testing.assert_close(grad, ref_grad, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize('size_in,size_out', [((8, 8), (32, 32)), ((8, 8), (13, 21)),
                                              ((5, 3), (5, 3)), ((8, 8), (4, 6))])
def test_bilinear_resize_is_interpolate(size_in, size_out):
    from mmsase.models.search_space.pooling import bilinear_resize
    x = torch.randn(3, 2, *size_in, dtype=torch.float64, requires_grad=True)
    assert_same_value_and_gradient(
        x, bilinear_resize(x, size_out),
        F.interpolate(x, size=size_out, mode='bilinear', align_corners=False))


@pytest.mark.parametrize('shift', [0.0, 3.0])
def test_float32_supernet_gradient_is_as_accurate_as_eager_float32(shift, monkeypatch):
    """The kernels' backward evaluates its polynomial in float32 for float32 input: its error
    against float64 must stay at the level of torch's own float32 path (also for maps whose
    mean is large against their spread, where raw moments cancel)."""
    import copy
    torch.manual_seed(0)
    block = SASESupernet(16).train()
    block64 = copy.deepcopy(block).double()
    eager = copy.deepcopy(block)
    x = torch.randn(6, 16, 10, 10) + shift
    g = torch.randn_like(x)

    def grad(module, inp):
        inp = inp.clone().requires_grad_()
        module(inp).backward(g.to(inp.dtype))
        return inp.grad.double()

    exact = grad(block64, x.double())
    fused = grad(block, x)
    monkeypatch.setenv(ps.DISABLE_ENV, '1')
    eager_grad = grad(eager, x)

    def error(a):
        return ((a - exact).norm() / exact.norm()).item()

    assert error(fused) < max(3 * error(eager_grad), 1e-7)
    assert error(fused) < 1e-6
