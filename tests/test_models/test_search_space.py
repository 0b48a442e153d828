"""The search space (spec §2): every op of every set, against hand-written formulas."""
import math

import pytest
import torch
import torch.nn.functional as F

from mmsase.models.search_space import (EDGE_OP_SET, EDGES, OP_SETS, FeatureStats,
                                        UnknownNameError, build_op, op_set)
from mmsase.models.search_space.moment_functions import (CentralMoments, ChannelFourthPowerMean,
                                                         FourthPowerMean)

from .helpers import bn_eval, randomize_, single_thread  # noqa: F401 (autouse fixture)

C = 8  # channels used throughout (gsop pools to C // 4 = 2)

SPEC_ORDER = {
    'channel_squeeze': ['gap', 'gsop', 'std_l2', 'l4', 'gap_gmp', 'gap_std', 'gap_skew'],
    'channel_excitation':
    ['fc', 'conv1d_3', 'conv1d_5', 'conv1d_7', 'conv1d_3x2', 'conv1d_3x3', 'affine'],
    'spatial_squeeze': ['gap', 'gsop', 'std_l2', 'l4', 'gap_gmp', 'gap_std', 'gap_skew'],
    'spatial_excitation': ['conv_3', 'conv_5', 'conv_7', 'conv_3x3x2', 'sep_3', 'sep_5', 'affine'],
}
ALL_OPS = [(s, name) for s, ops in OP_SETS.items() for name in ops]
SQUEEZE_OPS = [(s, n) for s, n in ALL_OPS if s.endswith('squeeze')]


def input_shape(set_name, b=2, c=C, h=5, w=6):
    """The input shape an op of ``set_name`` takes."""
    return {
        'channel_squeeze': (b, c, h, w),
        'spatial_squeeze': (b, c, h, w),
        'channel_excitation': (b, c, 1, 1),
        'spatial_excitation': (b, 1, h, w),
    }[set_name]


def output_shape(set_name, b=2, c=C, h=5, w=6):
    return {
        'channel_squeeze': (b, c, 1, 1),
        'spatial_squeeze': (b, 1, h, w),
        'channel_excitation': (b, c, 1, 1),
        'spatial_excitation': (b, 1, h, w),
    }[set_name]


def make(set_name, name, channels=C, seed=0, dtype=torch.float64):
    return randomize_(build_op(set_name, name, channels), seed).to(dtype)


# ---------------------------------------------------------------------------------------------
# Independent hand computations (plain torch formulas, written from the spec).
# ---------------------------------------------------------------------------------------------
def fusion(a, b, f):
    """δ(BN(conv_{2→1}([a; b]))) with the weights of a StatFusion1d/2d, BN in eval mode."""
    w = f.conv.weight.flatten()
    return torch.relu(bn_eval(w[0] * a + w[1] * b + f.conv.bias, f.bn))


def biased_var(x, dim):
    return ((x - x.mean(dim, keepdim=True))**2).mean(dim, keepdim=True)


def std(x, dim):
    return torch.sqrt(biased_var(x, dim) + 1e-5)


def skew(x, dim):
    third = ((x - x.mean(dim, keepdim=True))**3).mean(dim, keepdim=True)
    return third / (std(x, dim)**3 + 1e-5)


def l4(x, dim):
    return (x.pow(4).mean(dim, keepdim=True) + 1e-6)**0.25


def channel_windows(c, d):
    """Adaptive pooling windows over c channels into d groups."""
    return [(math.floor(i * c / d), math.ceil((i + 1) * c / d)) for i in range(d)]


def pool_channel_groups(x, d):
    return torch.stack([x[:, a:b].mean(1) for a, b in channel_windows(x.shape[1], d)], 1)


def channel_gsop(op, x):
    b, c, h, w = x.shape
    d = max(1, c // 4)
    f = pool_channel_groups(x, d).flatten(2)  # (B, d, HW)
    cov = torch.stack([torch.atleast_2d(torch.cov(f[i], correction=0))
                       for i in range(b)])  # (B, d, d)
    rows = (cov * op.row_conv.weight.view(d, d)).sum(-1)  # (B, d)
    out = rows @ op.expand.weight.view(c, d).T + op.expand.bias
    return out.view(b, c, 1, 1)


def spatial_gsop(op, x):
    b, c, h, w = x.shape
    d = max(1, c // 4)
    pooled = F.adaptive_avg_pool2d(x, 8)
    f = pool_channel_groups(pooled, d).flatten(2)  # (B, d, 64)
    cov = torch.stack([torch.cov(f[i].T, correction=0) for i in range(b)])  # (B, 64, 64)
    rows = (cov * op.row_conv.weight.view(64, 64)).sum(-1)
    grid = rows.view(b, 1, 8, 8)
    if (h, w) != (8, 8):
        grid = F.interpolate(grid, size=(h, w), mode='bilinear', align_corners=False)
    return grid * op.proj.weight.flatten()[0] + op.proj.bias


def channel_std_l2(op, x):
    n = (x - x.mean(1, keepdim=True)) / std(x, 1)  # standardised over C at each position
    y = op.weight.view(1, -1, 1, 1) * n + op.bias.view(1, -1, 1, 1)
    return torch.sqrt((y**2).mean((2, 3), keepdim=True) + 1e-5)


def spatial_std_l2(op, x):
    n = (x - x.mean((2, 3), keepdim=True)) / std(x, (2, 3))  # instance norm
    y = op.weight.view(1, -1, 1, 1) * n + op.bias.view(1, -1, 1, 1)
    return torch.sqrt((y**2).mean(1, keepdim=True) + 1e-5)


def conv1d_channels(z, weight):
    """Zero-padded cross-correlation of z (B, C) with a 1-D kernel, written as a loop."""
    k = weight.numel()
    padded = F.pad(z, (k // 2, k // 2))
    return sum(weight[j] * padded[:, j:j + z.shape[1]] for j in range(k))


def conv2d_single(h, weight, bias=None):
    """Zero-padded 'same' cross-correlation of h (B, 1, H, W) with a (kh, kw) kernel."""
    kh, kw = weight.shape[-2:]
    weight = weight.view(kh, kw)
    hp = F.pad(h, (kw // 2, kw // 2, kh // 2, kh // 2))
    H, W = h.shape[-2:]
    out = sum(weight[i, j] * hp[..., i:i + H, j:j + W] for i in range(kh) for j in range(kw))
    return out if bias is None else out + bias


def channel_conv_stack(op, z):
    b, c = z.shape[:2]
    v = z.view(b, c)
    for i, conv in enumerate(op.convs):
        v = conv1d_channels(v if i == 0 else torch.relu(v), conv.weight.flatten())
    return torch.sigmoid(v).view(b, c, 1, 1)


EXPECTED = {
    ('channel_squeeze', 'gap'): lambda op, x: x.mean((2, 3), keepdim=True),
    ('channel_squeeze', 'gsop'): channel_gsop,
    ('channel_squeeze', 'std_l2'): channel_std_l2,
    ('channel_squeeze', 'l4'): lambda op, x: l4(x, (2, 3)),
    ('channel_squeeze', 'gap_gmp'):
    lambda op, x: fusion(x.mean((2, 3)), x.amax((2, 3)), op.fusion).view(x.shape[0], -1, 1, 1),
    ('channel_squeeze', 'gap_std'):
    lambda op, x: fusion(x.mean((2, 3)), std(x, (2, 3)).flatten(1), op.fusion)[..., None, None],
    ('channel_squeeze', 'gap_skew'):
    lambda op, x: fusion(x.mean((2, 3)), skew(x, (2, 3)).flatten(1), op.fusion)[..., None, None],
    ('channel_excitation', 'fc'):
    lambda op, z: torch.sigmoid(
        torch.relu(z.flatten(1) @ op.fc1.weight.T) @ op.fc2.weight.T).view_as(z),
    ('channel_excitation', 'conv1d_3'): channel_conv_stack,
    ('channel_excitation', 'conv1d_5'): channel_conv_stack,
    ('channel_excitation', 'conv1d_7'): channel_conv_stack,
    ('channel_excitation', 'conv1d_3x2'): channel_conv_stack,
    ('channel_excitation', 'conv1d_3x3'): channel_conv_stack,
    ('channel_excitation', 'affine'): lambda op, z: torch.sigmoid(op.weight * z + op.bias),
    ('spatial_squeeze', 'gap'): lambda op, x: x.mean(1, keepdim=True),
    ('spatial_squeeze', 'gsop'): spatial_gsop,
    ('spatial_squeeze', 'std_l2'): spatial_std_l2,
    ('spatial_squeeze', 'l4'): lambda op, x: l4(x, 1),
    ('spatial_squeeze', 'gap_gmp'):
    lambda op, x: fusion(x.mean(1, keepdim=True), x.amax(1, keepdim=True), op.fusion),
    ('spatial_squeeze', 'gap_std'):
    lambda op, x: fusion(x.mean(1, keepdim=True), std(x, 1), op.fusion),
    ('spatial_squeeze', 'gap_skew'):
    lambda op, x: fusion(x.mean(1, keepdim=True), skew(x, 1), op.fusion),
    ('spatial_excitation', 'conv_3'):
    lambda op, h: torch.sigmoid(conv2d_single(h, op.convs[0].weight, op.convs[0].bias)),
    ('spatial_excitation', 'conv_5'):
    lambda op, h: torch.sigmoid(conv2d_single(h, op.convs[0].weight, op.convs[0].bias)),
    ('spatial_excitation', 'conv_7'):
    lambda op, h: torch.sigmoid(conv2d_single(h, op.convs[0].weight, op.convs[0].bias)),
    ('spatial_excitation', 'conv_3x3x2'):
    lambda op, h: torch.sigmoid(
        conv2d_single(torch.relu(conv2d_single(h, op.convs[0].weight, op.convs[0].bias)),
                      op.convs[1].weight, op.convs[1].bias)),
    ('spatial_excitation', 'sep_3'):
    lambda op, h: torch.sigmoid(
        conv2d_single(conv2d_single(h, op.convs[0].weight), op.convs[1].weight, op.convs[1].bias)),
    ('spatial_excitation', 'sep_5'):
    lambda op, h: torch.sigmoid(
        conv2d_single(conv2d_single(h, op.convs[0].weight), op.convs[1].weight, op.convs[1].bias)),
    ('spatial_excitation', 'affine'):
    lambda op, h: torch.sigmoid(op.weight * h + op.bias),
}

# Parameter counts per op for C = 64 (d = 16 pooled channels for the channel gsop).
PARAMS_C64 = {
    ('channel_squeeze', 'gap'): 0,
    ('channel_squeeze', 'gsop'): 16 * 16 + 16 * 64 + 64,
    ('channel_squeeze', 'std_l2'): 128,
    ('channel_squeeze', 'l4'): 0,
    ('channel_squeeze', 'gap_gmp'): 5,
    ('channel_squeeze', 'gap_std'): 5,
    ('channel_squeeze', 'gap_skew'): 5,
    ('channel_excitation', 'fc'): 2 * 64 * 4,
    ('channel_excitation', 'conv1d_3'): 3,
    ('channel_excitation', 'conv1d_5'): 5,
    ('channel_excitation', 'conv1d_7'): 7,
    ('channel_excitation', 'conv1d_3x2'): 6,
    ('channel_excitation', 'conv1d_3x3'): 9,
    ('channel_excitation', 'affine'): 128,
    ('spatial_squeeze', 'gap'): 0,
    ('spatial_squeeze', 'gsop'): 64 * 64 + 2,
    ('spatial_squeeze', 'std_l2'): 128,
    ('spatial_squeeze', 'l4'): 0,
    ('spatial_squeeze', 'gap_gmp'): 5,
    ('spatial_squeeze', 'gap_std'): 5,
    ('spatial_squeeze', 'gap_skew'): 5,
    ('spatial_excitation', 'conv_3'): 10,
    ('spatial_excitation', 'conv_5'): 26,
    ('spatial_excitation', 'conv_7'): 50,
    ('spatial_excitation', 'conv_3x3x2'): 20,
    ('spatial_excitation', 'sep_3'): 7,
    ('spatial_excitation', 'sep_5'): 11,
    ('spatial_excitation', 'affine'): 2,
}


# ---------------------------------------------------------------------------------------------
# The tables
# ---------------------------------------------------------------------------------------------
def test_sets_follow_the_spec_table():
    assert {s: list(ops) for s, ops in OP_SETS.items()} == SPEC_ORDER
    assert EDGES == ('cs', 'ce1', 'ce2', 'ss1', 'ss2', 'se')
    assert EDGE_OP_SET == {
        'cs': 'channel_squeeze', 'ce1': 'channel_excitation', 'ce2': 'channel_excitation',
        'ss1': 'spatial_squeeze', 'ss2': 'spatial_squeeze', 'se': 'spatial_excitation'}
    assert op_set('ss2') is op_set('spatial_squeeze')


def test_every_op_has_a_reference_and_a_parameter_count():
    assert set(EXPECTED) == set(ALL_OPS)
    assert set(PARAMS_C64) == set(ALL_OPS)


@pytest.mark.parametrize('set_name,name', ALL_OPS)
def test_parameter_count(set_name, name):
    op = build_op(set_name, name, 64)
    assert sum(p.numel() for p in op.parameters()) == PARAMS_C64[(set_name, name)]


def test_fc_hidden_width_and_no_bias():
    for channels, hidden in [(1, 1), (8, 1), (16, 1), (31, 1), (32, 2), (256, 16)]:
        op = build_op('channel_excitation', 'fc', channels)
        assert op.fc1.weight.shape == (hidden, channels)
        assert op.fc1.bias is None and op.fc2.bias is None


def test_build_op_errors_name_the_bad_entry_and_the_allowed_ones():
    with pytest.raises(KeyError) as info:
        build_op('cs', 'gapp', 8)
    msg = str(info.value)
    assert "'gapp'" in msg and all(name in msg for name in SPEC_ORDER['channel_squeeze'])
    assert isinstance(info.value, ValueError)  # UnknownNameError is both
    with pytest.raises(UnknownNameError, match="'xx'.*cs, ce1, ce2, ss1, ss2, se"):
        build_op('xx', 'gap', 8)
    for bad in (0, -3, 2.0, True, '8'):
        with pytest.raises(ValueError, match=f'channels must be a positive int, got {bad!r}'):
            build_op('se', 'conv_3', bad)


# ---------------------------------------------------------------------------------------------
# Every op of every set
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize('set_name,name', ALL_OPS)
def test_output_shape_and_range(set_name, name):
    op = make(set_name, name).eval()
    out = op(torch.randn(input_shape(set_name), dtype=torch.float64))
    assert out.shape == output_shape(set_name)
    if set_name.endswith('excitation'):  # every excitation op ends with a sigmoid
        assert ((out > 0) & (out < 1)).all()


@pytest.mark.parametrize('set_name,name', ALL_OPS)
@pytest.mark.parametrize('size', [(5, 6), (8, 8)])
def test_value_against_hand_computation(set_name, name, size):
    op = make(set_name, name, seed=1).eval()
    x = torch.randn(input_shape(set_name, h=size[0], w=size[1]), dtype=torch.float64,
                    generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = EXPECTED[(set_name, name)](op, x)
        out = op(x)
    assert out.shape == expected.shape
    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize('channels', [1, 3, 9, 10])
def test_gsop_channel_pooling_for_any_channel_count(channels):
    """C not divisible by 4 pools with adaptive (possibly overlapping) windows; C < 4 → 1."""
    x = torch.randn(2, channels, 5, 6, dtype=torch.float64)
    for set_name, ref in (('channel_squeeze', channel_gsop), ('spatial_squeeze', spatial_gsop)):
        op = make(set_name, 'gsop', channels=channels, seed=3).eval()
        assert op.groups == max(1, channels // 4)
        with torch.no_grad():
            torch.testing.assert_close(op(x), ref(op, x), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize('set_name,name', ALL_OPS)
def test_gradcheck(set_name, name):
    op = make(set_name, name, seed=4).train()  # BN on batch statistics is differentiable too
    x = torch.randn(input_shape(set_name), dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(op, (x, ), fast_mode=True)


@pytest.mark.parametrize('set_name,name', ALL_OPS)
def test_parameters_receive_finite_gradients(set_name, name):
    op = make(set_name, name, seed=5).train()
    x = torch.randn(input_shape(set_name), dtype=torch.float64, requires_grad=True)
    op(x).square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    for pname, p in op.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname


@pytest.mark.parametrize('set_name,name', ALL_OPS)
@pytest.mark.parametrize('size', [(7, 7), (13, 17), (1, 1)])
def test_odd_spatial_sizes(set_name, name, size):
    op = make(set_name, name, dtype=torch.float32).eval()
    out = op(torch.randn(input_shape(set_name, h=size[0], w=size[1])))
    assert out.shape == output_shape(set_name, h=size[0], w=size[1])
    assert torch.isfinite(out).all()


@pytest.mark.parametrize('set_name,name', ALL_OPS)
def test_batch_of_one(set_name, name):
    op = make(set_name, name, dtype=torch.float32)
    x = torch.randn(input_shape(set_name, b=1))
    assert op.eval()(x).shape == output_shape(set_name, b=1)
    # Training mode too: the fusions' BN normalises over C (or H·W) values, not over B.
    assert torch.isfinite(op.train()(x)).all()


@pytest.mark.parametrize('set_name,name', ALL_OPS)
def test_bfloat16_autocast_with_large_activations(set_name, name):
    """Statistics are computed in float32 under autocast: finite and close to float32."""
    op = make(set_name, name, dtype=torch.float32).eval()
    x = torch.randn(input_shape(set_name), generator=torch.Generator().manual_seed(6)) * 1e3
    with torch.no_grad():
        expected = op(x)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            out = op(x)
            out_bf16_input = op(x.bfloat16())
    for o in (out, out_bf16_input):
        assert torch.isfinite(o).all()
        torch.testing.assert_close(o.float(), expected, rtol=0.05,
                                   atol=0.05 * expected.abs().max().item() + 1e-3)


@pytest.mark.parametrize('set_name,name', SQUEEZE_OPS)
def test_float16_statistics_do_not_overflow(set_name, name):
    """x⁴ of |x| ≈ 30 overflows float16 (max 65504); the statistics stay finite and right."""
    op = make(set_name, name, dtype=torch.float32).eval()
    x = torch.randn(input_shape(set_name), generator=torch.Generator().manual_seed(7)) * 30
    assert not torch.isfinite(x.half().pow(4)).all()  # the hazard is real
    with torch.no_grad():
        out = op.half()(x.half())
        expected = op.float()(x.half().float())
    assert out.dtype == torch.float16 and torch.isfinite(out).all()
    torch.testing.assert_close(out.float(), expected, rtol=2e-2,
                               atol=2e-2 * expected.abs().max().item() + 1e-3)


@pytest.mark.parametrize('set_name,name', SQUEEZE_OPS)
def test_squeeze_output_depends_on_input(set_name, name):
    """Guards against degenerate statistics such as the literal std_l2 (spec §2)."""
    torch.manual_seed(0)
    op = build_op(set_name, name, C).double().train()  # as initialised; BN on batch stats
    g = torch.Generator().manual_seed(8)
    x1 = torch.randn(input_shape(set_name), dtype=torch.float64, generator=g)
    x2 = torch.randn(input_shape(set_name), dtype=torch.float64, generator=g) * 2 + 1
    assert (op(x1) - op(x2)).abs().max() > 1e-3


def test_std_l2_literal_reading_would_be_degenerate():
    """Why the spec's Decision exists: standardising each channel over H·W and then taking
    that channel's L2 norm over H·W gives a constant; our channel std_l2 follows the input,
    even a per-channel rescaling and shift of it, which the literal reading cannot see."""
    g = torch.Generator().manual_seed(9)
    x1, x2 = torch.randn(2, 2, C, 5, 6, dtype=torch.float64, generator=g)
    x3 = x1 * (torch.rand(1, C, 1, 1, dtype=torch.float64, generator=g) * 3 + 0.5) + torch.randn(
        1, C, 1, 1, dtype=torch.float64, generator=g)
    literal = [torch.sqrt(((x - x.mean((2, 3), keepdim=True)) / std(x, (2, 3))).square().mean(
        (2, 3))) for x in (x1, x2, x3)]
    torch.testing.assert_close(literal[0], literal[1], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(literal[0], literal[2], rtol=1e-4, atol=1e-4)
    op = build_op('channel_squeeze', 'std_l2', C).double()
    assert (op(x1) - op(x2)).abs().max() > 1e-2
    assert (op(x1) - op(x3)).abs().max() > 1e-2


# ---------------------------------------------------------------------------------------------
# FeatureStats: shared and re-weighted moments
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize('axis', ['space', 'channel'])
def test_feature_stats_of_reweighted_input_equal_stats_of_the_product(axis):
    x = torch.randn(2, C, 5, 6, dtype=torch.float64)
    m = torch.rand(2, C, 1, 1, dtype=torch.float64) + 0.1
    lazy = FeatureStats(x, channel_scale=m).over(axis)
    direct = FeatureStats(x * m).over(axis)
    for name in ('mean', 'amax', 'var', 'std', 'skew', 'l4'):
        torch.testing.assert_close(getattr(lazy, name), getattr(direct, name), msg=name)


def test_feature_stats_are_computed_once_and_shared():
    stats = FeatureStats(torch.randn(2, C, 5, 6))
    moments = stats.over('space')
    for name in ('mean', 'amax', 'var', 'std', 'skew', 'l4'):
        assert getattr(moments, name) is getattr(moments, name), name
        assert getattr(stats.over('space'), name) is getattr(moments, name), name
    assert stats.over('channel').mean is not moments.mean


@pytest.mark.parametrize('dim', [(2, 3), (1, )])
def test_central_moments_and_fourth_power_mean(dim):
    """The hand-written gradients of the moment functions, each output alone and together."""
    x = torch.randn(2, 3, 4, 5, dtype=torch.float64, requires_grad=True)
    mean, var, third = CentralMoments.apply(x, dim)
    c = x - x.mean(dim, keepdim=True)
    torch.testing.assert_close(mean, x.mean(dim, keepdim=True))
    torch.testing.assert_close(var, (c**2).mean(dim, keepdim=True))
    torch.testing.assert_close(third, (c**3).mean(dim, keepdim=True))
    torch.testing.assert_close(FourthPowerMean.apply(x, dim), (x**4).mean(dim, keepdim=True))
    for pick in (lambda m: m, lambda m: m[0], lambda m: m[1], lambda m: m[2],
                 lambda m: (m[1], m[2])):
        assert torch.autograd.gradcheck(lambda v: pick(CentralMoments.apply(v, dim)), (x, ))
    assert torch.autograd.gradcheck(lambda v: FourthPowerMean.apply(v, dim), (x, ))


def test_channel_fourth_power_mean():
    x = torch.randn(2, 5, 7, dtype=torch.float64, requires_grad=True)
    w = torch.rand(2, 1, 5, dtype=torch.float64, requires_grad=True)
    expected = (w.transpose(1, 2) * x**4).mean(1, keepdim=True)
    torch.testing.assert_close(ChannelFourthPowerMean.apply(x, w), expected)
    assert torch.autograd.gradcheck(ChannelFourthPowerMean.apply, (x, w))
    assert torch.autograd.gradcheck(lambda v: ChannelFourthPowerMean.apply(v, w.detach()), (x, ))


@pytest.mark.parametrize('set_name,name', SQUEEZE_OPS)
def test_squeeze_ops_accept_shared_feature_stats(set_name, name):
    op = make(set_name, name).eval()
    x = torch.randn(2, C, 5, 6, dtype=torch.float64)
    m = torch.rand(2, C, 1, 1, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(op(FeatureStats(x)), op(x), rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(
            op(FeatureStats(x, channel_scale=m)), op(x * m), rtol=1e-10, atol=1e-12)


def test_feature_stats_rejects_non_4d_input():
    with pytest.raises(ValueError, match=r'\(B, C, H, W\)'):
        FeatureStats(torch.randn(2, 3, 4))
