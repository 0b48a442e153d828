"""GCT, EANorm, SGE and IEBN against references written from their formulas (float64)."""
import math

import pytest
import torch
import torch.nn as nn
from torch.nn.modules.batchnorm import _BatchNorm

from mmsase.models.plugins.base import (AFTER_LAST_NORM, BEFORE_CONV, REPLACE_NORM,
                                        AttentionBlock)
from mmsase.models.plugins.eanorm import EANorm
from mmsase.models.plugins.gct import GCT
from mmsase.models.plugins.iebn import IEBN
from mmsase.models.plugins.sge import SGE

from .helpers import randomize_, single_thread  # noqa: F401 (autouse fixture)

C = 32
SHAPE = (2, C, 5, 6)


def rand(shape=SHAPE, seed=0, dtype=torch.float64, offset=0.3):
    g = torch.Generator().manual_seed(seed)
    # per-channel offsets, so that means, L1 sums and GAPs are not all near 0
    return torch.randn(shape, generator=g, dtype=dtype) + offset * torch.randn(
        shape[:2] + (1, 1), generator=g, dtype=dtype)


def n_params(module):
    return sum(p.numel() for p in module.parameters())


# ---------------------------------------------------------------------------------------------
# References: per-channel / per-group formulas written out, without the modules' reshapes
# ---------------------------------------------------------------------------------------------
def gct_reference(x, block, mode, after_relu=False):
    eps = block.epsilon
    alpha, gamma, beta = (p.detach().flatten()[None, :] for p in (block.alpha, block.gamma,
                                                                  block.beta))
    if mode == 'l2':
        e = alpha * torch.sqrt(torch.linalg.vector_norm(x, dim=(2, 3))**2 + eps)  # (B, C)
        n = gamma / torch.sqrt((e**2).sum(1, keepdim=True) / x.shape[1] + eps)
    else:
        e = alpha * (x.sum((2, 3)) if after_relu else torch.linalg.vector_norm(
            x, ord=1, dim=(2, 3)))
        n = gamma / (e.abs().sum(1, keepdim=True) / x.shape[1] + eps)
    return x * (1 + torch.tanh(e * n + beta))[..., None, None]


def instance_norm(x, eps):
    """(x − mean_hw) / sqrt(biased var_hw + eps), per sample and channel."""
    n = x.shape[2] * x.shape[3]
    mean = x.sum((2, 3), keepdim=True) / n
    var = ((x - mean)**2).sum((2, 3), keepdim=True) / n
    return (x - mean) / torch.sqrt(var + eps)


def eanorm_reference(x, block, mode):
    g, eps = block.groups, block.eps
    w, b, alpha, delta = (p.detach().flatten() for p in (block.groupnorm.weight,
                                                         block.groupnorm.bias, block.alpha,
                                                         block.delta))
    if mode == 'l2':
        norm = alpha * w / torch.sqrt((w**2).mean() + eps)
    else:
        norm = alpha * w / (w.abs().mean() + eps)
    # channel c of x is channel c mod C/g of its group: the C/g-vectors repeat g times
    w, b, norm, delta = (v.repeat(g)[None, :, None, None] for v in (w, b, norm, delta))
    return x * torch.sigmoid((w * instance_norm(x, eps) + b) * norm + delta)


def sge_reference(x, block):
    bsz, c, h, w = x.shape
    width = c // block.groups
    weight, bias = block.weight.detach().flatten(), block.bias.detach().flatten()
    out = torch.empty_like(x)
    for k in range(block.groups):
        xg = x[:, k * width:(k + 1) * width]
        t = (xg * xg.mean((2, 3), keepdim=True)).sum(1).reshape(bsz, h * w)
        t = t - t.mean(1, keepdim=True)
        std = torch.sqrt((t**2).sum(1, keepdim=True) / (h * w - 1))  # unbiased, as the code
        t = (t / (std + 1e-5)) * weight[k] + bias[k]
        out[:, k * width:(k + 1) * width] = xg * torch.sigmoid(t).reshape(bsz, 1, h, w)
    return out


def iebn_reference(x, bn, mean, var):
    x_hat = (x - mean[:, None, None]) / torch.sqrt(var[:, None, None] + bn.eps)
    gate = torch.sigmoid(x.mean((2, 3)) * bn.ie_weight.detach() + bn.ie_bias.detach())
    return x_hat * (bn.weight.detach() * gate)[..., None, None] + bn.bias.detach()[:, None,
                                                                                    None]


# ---------------------------------------------------------------------------------------------
# Values at initialisation
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize('mode', ['l2', 'l1'])
def test_gct_is_the_exact_identity_at_init(mode):
    x = rand(dtype=torch.float32)
    assert torch.equal(GCT(C, mode=mode)(x), x)


@pytest.mark.parametrize('mode', ['l2', 'l1'])
def test_eanorm_halves_the_input_at_init(mode):
    x = rand(dtype=torch.float32)
    assert torch.equal(EANorm(C, groups=4, mode=mode)(x), 0.5 * x)


def test_sge_scales_by_sigmoid_one_at_init():
    x = rand()
    torch.testing.assert_close(SGE(C, groups=8).double()(x), torch.sigmoid(torch.tensor(1.,
                               dtype=torch.float64)) * x, rtol=1e-15, atol=0)


def test_iebn_at_init_is_sigmoid_minus_one_times_the_batch_normalised_input():
    x = rand()
    bn = IEBN(C).double().train()
    mean, var = x.mean((0, 2, 3)), x.var((0, 2, 3), unbiased=False)
    x_hat = (x - mean[:, None, None]) / torch.sqrt(var[:, None, None] + 1e-5)
    torch.testing.assert_close(bn(x), x_hat / (1 + math.e), rtol=1e-12, atol=1e-12)
    assert abs(1 / (1 + math.e) - 0.2689) < 1e-4


# ---------------------------------------------------------------------------------------------
# Randomised weights against the references
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize('mode,after_relu', [('l2', False), ('l1', False), ('l1', True)])
@pytest.mark.parametrize('seed', range(2))
def test_gct_matches_reference(mode, after_relu, seed):
    block = randomize_(GCT(C, mode=mode, after_relu=after_relu), seed).double()
    x = rand(seed=seed)
    if after_relu:
        x = x.relu()
    with torch.no_grad():
        torch.testing.assert_close(block(x), gct_reference(x, block, mode, after_relu),
                                   rtol=1e-12, atol=1e-12)


def test_gct_after_relu_only_changes_signed_inputs():
    signed = rand()
    a, b = (randomize_(GCT(C, mode='l1', after_relu=r), 0).double() for r in (False, True))
    with torch.no_grad():
        torch.testing.assert_close(a(signed.relu()), b(signed.relu()))
        assert not torch.allclose(a(signed), b(signed))


@pytest.mark.parametrize('mode', ['l2', 'l1'])
@pytest.mark.parametrize('groups', [4, 8])
def test_eanorm_matches_reference(mode, groups):
    block = randomize_(EANorm(C, groups=groups, mode=mode), groups).double()
    x = rand(seed=groups)
    with torch.no_grad():
        torch.testing.assert_close(block(x), eanorm_reference(x, block, mode), rtol=1e-12,
                                   atol=1e-12)


@pytest.mark.parametrize('groups', [4, 8])
def test_sge_matches_reference(groups):
    block = randomize_(SGE(C, groups=groups), groups).double()
    x = rand(seed=groups)
    with torch.no_grad():
        torch.testing.assert_close(block(x), sge_reference(x, block), rtol=1e-12, atol=1e-12)


def test_sge_on_a_one_by_one_map_is_finite():
    """The code's unbiased std is NaN on one position; t is 0 there, so y = σ(b)·x."""
    block = randomize_(SGE(C, groups=8), 1).double()
    x = rand((2, C, 1, 1)).requires_grad_()
    y = block(x)
    expected = x * torch.sigmoid(block.bias).repeat_interleave(C // 8, 1)
    torch.testing.assert_close(y, expected)
    y.sum().backward()
    assert torch.isfinite(x.grad).all() and torch.isfinite(block.weight.grad).all()


def test_iebn_train_mode_uses_batch_statistics_and_updates_running_ones():
    bn = randomize_(IEBN(C), 3).double().train()
    rm, rv = bn.running_mean.clone(), bn.running_var.clone()
    x = rand(seed=3)
    mean, n = x.mean((0, 2, 3)), x.numel() // C
    var = ((x - mean[:, None, None])**2).sum((0, 2, 3)) / n
    with torch.no_grad():
        torch.testing.assert_close(bn(x), iebn_reference(x, bn, mean, var), rtol=1e-12,
                                   atol=1e-12)
    torch.testing.assert_close(bn.running_mean, 0.9 * rm + 0.1 * mean)
    torch.testing.assert_close(bn.running_var, 0.9 * rv + 0.1 * var * n / (n - 1))
    assert bn.num_batches_tracked == 1


def test_iebn_eval_mode_uses_running_statistics():
    bn = randomize_(IEBN(C), 4).double().eval()
    state = {k: v.clone() for k, v in bn.state_dict().items()}
    x = rand(seed=4)
    with torch.no_grad():
        torch.testing.assert_close(bn(x), iebn_reference(x, bn, bn.running_mean,
                                                         bn.running_var), rtol=1e-12,
                                   atol=1e-12)
    for k, v in bn.state_dict().items():
        assert torch.equal(v, state[k]), k


def test_iebn_momentum_none_is_a_cumulative_average_like_batchnorm():
    bn, ref = IEBN(C, momentum=None).double(), nn.BatchNorm2d(C, momentum=None).double()
    for seed in range(3):
        x = rand(seed=seed)
        bn(x), ref(x)
    torch.testing.assert_close(bn.running_mean, ref.running_mean)
    torch.testing.assert_close(bn.running_var, ref.running_var)


@pytest.mark.parametrize('make', [
    lambda: GCT(8), lambda: GCT(8, mode='l1'), lambda: EANorm(8, groups=2),
    lambda: EANorm(8, groups=2, mode='l1'), lambda: SGE(8, groups=2), lambda: IEBN(8)])
def test_gradcheck(make):
    block = randomize_(make(), 0).double().train()
    x = rand((2, 8, 3, 4), seed=5).requires_grad_()
    assert torch.autograd.gradcheck(block, (x, ), fast_mode=True)


@pytest.mark.parametrize('make', [lambda: EANorm(C, groups=4), lambda: SGE(C, groups=8),
                                  lambda: GCT(C)])
def test_channels_last_input(make):
    block = randomize_(make(), 0).double()
    x = rand()
    with torch.no_grad():
        torch.testing.assert_close(block(x.to(memory_format=torch.channels_last)), block(x))


LOW_PRECISION = {torch.float16: 2e-3, torch.bfloat16: 2e-2}


@pytest.mark.parametrize('make', [
    lambda: GCT(C), lambda: GCT(C, mode='l1'), lambda: EANorm(C, groups=4),
    lambda: EANorm(C, groups=4, mode='l1'), lambda: SGE(C, groups=8), lambda: IEBN(C)])
@pytest.mark.parametrize('dtype', LOW_PRECISION)
@pytest.mark.parametrize('half_module', [False, True])
def test_low_precision_inputs_with_large_activations(make, dtype, half_module):
    """Σ x² over 30 positions of |x| ~ 100 overflows float16: statistics run in float32."""
    block = randomize_(make(), 0).eval()
    x = (rand(dtype=torch.float32) * 100).to(dtype)
    with torch.no_grad():
        expected = block(x.float())
        y = (block.to(dtype) if half_module else block)(x)
    assert y.dtype == dtype and torch.isfinite(y).all()
    tol = LOW_PRECISION[dtype]
    torch.testing.assert_close(y.float(), expected, rtol=tol,
                               atol=tol * expected.abs().max().item())


@pytest.mark.parametrize('make', [lambda: GCT(C), lambda: EANorm(C, groups=4),
                                  lambda: SGE(C, groups=8), lambda: IEBN(C)])
def test_cpu_bfloat16_autocast(make):
    block = randomize_(make(), 0).eval()
    x = rand(dtype=torch.float32) * 100
    with torch.no_grad():
        expected = block(x)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            y = block(x.to(torch.bfloat16))
    assert torch.isfinite(y).all()
    torch.testing.assert_close(y.float(), expected, rtol=2e-2,
                               atol=2e-2 * expected.abs().max().item())


# ---------------------------------------------------------------------------------------------
# Parameter counts, placement attributes, init_weights
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize('channels', [32, 64, 256])
def test_parameter_counts(channels):
    assert n_params(GCT(channels)) == 3 * channels
    assert n_params(EANorm(channels)) == 4 * channels // 16
    assert n_params(EANorm(channels, groups=4)) == channels
    assert n_params(SGE(channels, groups=32)) == 64
    assert n_params(IEBN(channels)) == 4 * channels == 2 * n_params(nn.BatchNorm2d(channels))


def test_resnet50_totals_of_the_spec():
    # EANorm, g = 16, one per bottleneck; SGE 128 per stage (EAN); IEBN on the stem BN and
    # bn1-bn3 of every block (not the downsample BN)
    stages = [(64, 3), (128, 4), (256, 6), (512, 3)]
    assert sum(n * n_params(EANorm(4 * w)) for w, n in stages) == 3_776
    assert sum(n_params(SGE(4 * w)) for w, _ in stages) == 4 * 128
    iebn = n_params(IEBN(64)) - 128 + sum(
        n * (2 * (n_params(IEBN(w)) - 2 * w) + n_params(IEBN(4 * w)) - 8 * w)
        for w, n in stages)
    assert 25_557_032 + iebn == 25_602_472
    # GCT before the stem conv, conv1-conv3 of every bottleneck, and each downsample conv
    gct, inplanes = n_params(GCT(3)), 64
    for w, n in stages:
        for i in range(n):
            gct += n_params(GCT(inplanes)) + 2 * n_params(GCT(w))
            gct += n_params(GCT(inplanes)) if i == 0 else 0
            inplanes = 4 * w
    assert 25_557_032 + gct == 25_624_625


def test_placement_attributes():
    assert (GCT._abbr_, GCT.position, GCT.positions) == ('gct', BEFORE_CONV,
                                                         (BEFORE_CONV, AFTER_LAST_NORM))
    assert (EANorm._abbr_, EANorm.position) == ('eanorm', AFTER_LAST_NORM)
    assert (SGE._abbr_, SGE.position) == ('sge', AFTER_LAST_NORM)
    assert (IEBN._abbr_, IEBN.position, IEBN.positions) == ('bn', REPLACE_NORM,
                                                           (REPLACE_NORM, ))
    for cls in (GCT, EANorm, SGE, IEBN):
        assert issubclass(cls, AttentionBlock) and cls.blocks == 'all'


@pytest.mark.parametrize('make', [
    lambda: GCT(C), lambda: GCT(C, mode='l1'), lambda: EANorm(C, groups=4),
    lambda: SGE(C, groups=8), lambda: IEBN(C)])
def test_init_weights_restores_the_authors_init_after_a_generic_one(make):
    fresh = make()
    block = randomize_(make(), 7)
    for m in block.modules():  # what a backbone's generic init does to norms
        if isinstance(m, (_BatchNorm, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    block.init_weights()
    for (name, p), q in zip(block.named_parameters(), fresh.parameters()):
        assert torch.equal(p, q), name


def test_iebn_init_weights_keeps_zero_init_residual():
    bn = randomize_(IEBN(C), 1)
    bias = bn.bias.detach().clone()
    nn.init.zeros_(bn.weight)  # mmpretrain's zero_init_residual on bn3
    bn.init_weights()
    assert torch.equal(bn.ie_weight, torch.zeros(C))
    assert torch.equal(bn.ie_bias, torch.full((C, ), -1.))
    assert torch.equal(bn.weight, torch.zeros(C)) and torch.equal(bn.bias, bias)
    bn.reset_parameters()
    assert torch.equal(bn.ie_bias, torch.full((C, ), -1.)) and torch.equal(bn.weight,
                                                                           torch.ones(C))


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize('make,message', [
    (lambda: GCT(C, mode='l3'), r"GCT mode must be one of \('l2', 'l1'\), got 'l3'"),
    (lambda: GCT(C, epsilon=0), 'GCT epsilon must be positive, got 0'),
    (lambda: GCT(0), 'in_channels must be a positive int, got 0'),
    (lambda: EANorm(30, groups=4), 'EANorm: in_channels=30 is not divisible by groups=4'),
    (lambda: EANorm(C, mode='L2'), r"EANorm mode must be one of \('l2', 'l1'\), got 'L2'"),
    (lambda: EANorm(C, groups=0), 'groups must be a positive int, got 0'),
    (lambda: SGE(96), 'SGE: in_channels=96 is not divisible by groups=64'),
    (lambda: SGE(C, groups=2.0), 'groups must be a positive int, got 2.0'),
    (lambda: IEBN(), 'IEBN num_features must be a positive int, got None'),
    (lambda: IEBN(in_channels=256), r"IEBN replaces the BN layers.*cannot be a plug-in "
     r"placed after a conv.*position='after_conv3'.*in_channels=256.*norm_cfg="),
])
def test_bad_arguments_are_named(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize('block,name', [(GCT(C), 'GCT'), (EANorm(C, groups=4), 'EANorm'),
                                        (SGE(C, groups=8), 'SGE')])
def test_wrong_input_shape_is_reported(block, name):
    with pytest.raises(ValueError, match=rf'{name}\(in_channels=32\) expects \(B, 32, H, W\), '
                       r'got \(2, 16, 4, 4\)'):
        block(torch.randn(2, 16, 4, 4))


# ---------------------------------------------------------------------------------------------
# Registry, mmcv builders, and IEBN as a BN for mmengine / mmcv / torch
# ---------------------------------------------------------------------------------------------
def test_registered_in_the_root_registry_and_mmcv_plugins():
    from mmcv.cnn import build_plugin_layer
    from mmengine.registry import MODELS
    for cls in (GCT, EANorm, SGE, IEBN):
        assert MODELS.get(cls.__name__) is cls
    for cfg, abbr in ((dict(type='GCT'), 'gct'), (dict(type='EANorm', groups=4), 'eanorm'),
                      (dict(type='SGE', groups=8), 'sge')):
        name, layer = build_plugin_layer(cfg, postfix='_1', in_channels=C)
        assert name == abbr + '_1' and layer.in_channels == C
        assert layer(torch.randn(1, C, 3, 3)).shape == (1, C, 3, 3)


def test_iebn_through_build_norm_layer():
    from mmcv.cnn import build_norm_layer
    name, layer = build_norm_layer(dict(type='IEBN'), 64, postfix=1)
    assert name == 'bn1' and type(layer) is IEBN and layer.num_features == 64
    assert layer.eps == 1e-5 and layer.momentum == 0.1
    _, frozen = build_norm_layer(dict(type='IEBN', requires_grad=False, momentum=0.01), 8)
    assert frozen.momentum == 0.01
    assert not any(p.requires_grad for p in frozen.parameters())


def test_iebn_as_an_mmdet_plugin_is_refused_clearly():
    from mmcv.cnn import build_plugin_layer
    with pytest.raises(ValueError, match=r'IEBN replaces the BN layers.*in_channels=256'):
        build_plugin_layer(dict(type='IEBN'), in_channels=256, postfix='_3')


def test_iebn_is_a_batchnorm_for_norm_eval_and_train_eval():
    model = nn.Sequential(nn.Conv2d(3, C, 1), IEBN(C), nn.ReLU())
    assert isinstance(model[1], _BatchNorm) and isinstance(model[1], nn.BatchNorm2d)
    model.train()
    for m in model.modules():  # what norm_eval=True does in mmpretrain / mmdet backbones
        if isinstance(m, _BatchNorm):
            m.eval()
    assert not model[1].training and model[0].training
    state = {k: v.clone() for k, v in model[1].state_dict().items()}
    model(torch.randn(2, 3, 4, 4))
    assert all(torch.equal(v, state[k]) for k, v in model[1].state_dict().items())
    model.train()
    model(torch.randn(2, 3, 4, 4))
    assert model[1].training and model[1].num_batches_tracked == 1
    with pytest.raises(ValueError, match='expected 4D input'):
        model[1](torch.randn(2, C, 4))


def test_mmengine_bn_init_reaches_iebn_and_the_eanorm_groupnorm():
    """mmpretrain's / mmdet's ResNet init: Constant on layer=['_BatchNorm', 'GroupNorm'], which
    mmengine matches against a class's name and direct bases only."""
    from mmengine.model.weight_init import initialize
    iebn, eanorm = randomize_(IEBN(C), 0), randomize_(EANorm(C, groups=4), 1)
    ie_weight = iebn.ie_weight.detach().clone()
    initialize(nn.Sequential(iebn, eanorm),
               dict(type='Constant', val=1, layer=['_BatchNorm', 'GroupNorm']))
    for norm in (iebn, eanorm.groupnorm):
        assert torch.equal(norm.weight, torch.ones_like(norm.weight))
        assert torch.equal(norm.bias, torch.zeros_like(norm.bias))
    assert torch.equal(iebn.ie_weight, ie_weight)  # left to IEBN.init_weights


def test_iebn_loads_a_plain_batchnorm_state_dict():
    bn = randomize_(nn.BatchNorm2d(C), 2)
    iebn = IEBN(C)
    result = iebn.load_state_dict(bn.state_dict(), strict=False)
    assert sorted(result.missing_keys) == ['ie_bias', 'ie_weight']
    assert not result.unexpected_keys
    assert torch.equal(iebn.weight, bn.weight) and torch.equal(iebn.running_var,
                                                               bn.running_var)


def test_iebn_is_dropped_by_batchnorm_replacing_utilities_as_documented():
    """The docstring warns that these treat IEBN as a plain BN; this pins that behaviour."""
    from mmcv.cnn import fuse_conv_bn
    from mmengine.model import convert_sync_batchnorm
    for convert in (nn.SyncBatchNorm.convert_sync_batchnorm, convert_sync_batchnorm):
        converted = convert(nn.Sequential(IEBN(C)))
        assert type(converted[0]) is nn.SyncBatchNorm and not hasattr(converted[0], 'ie_weight')
    fused = fuse_conv_bn(nn.Sequential(nn.Conv2d(3, C, 1), IEBN(C)).eval())
    assert isinstance(fused[1], nn.Identity)
