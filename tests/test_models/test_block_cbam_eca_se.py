"""The CBAM, ECA and SE baselines (spec BASELINES_CODE.md §1–3).

Each block is checked against the formula written out here with plain torch ops on its own
weights (float64), and against timm's / mmpretrain's modules with the same weights copied in.
"""
import math
import re

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from mmsase.models.plugins.base import AFTER_LAST_NORM, ALL_BLOCKS, AttentionBlock
from mmsase.models.plugins.cbam import CBAM
from mmsase.models.plugins.eca import ECA, eca_kernel_size
from mmsase.models.plugins.se import SE, make_divisible

from .helpers import bn_eval, randomize_, single_thread  # noqa: F401 (autouse fixture)

C = 32
SHAPE = (2, C, 5, 6)
R50_WIDTHS = (256, 512, 1024, 2048)
R50_BLOCKS = (3, 4, 6, 3)
R50 = 25_557_032


def n_params(module):
    return sum(p.numel() for p in module.parameters())


def x64(shape=SHAPE, seed=1):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def bn_train(v, bn):
    """Training-mode BN of a one-channel map: batch mean and biased variance over (B, H, W)."""
    mu, var = v.mean(), v.var(unbiased=False)
    return (v - mu) / torch.sqrt(var + bn.eps) * bn.weight + bn.bias


# ---------------------------------------------------------------------------------------------
# CBAM
# ---------------------------------------------------------------------------------------------
def cbam_channel_reference(block, x):
    """x1 = x ⊙ σ(MLP(GAP x) + MLP(GMP x)), the MLP shared; zero biases where there are none."""
    c, h = block.in_channels, block.hidden_channels
    w1, w2 = block.fc1.weight.reshape(h, c), block.fc2.weight.reshape(c, h)
    b1 = block.fc1.bias if block.fc1.bias is not None else torch.zeros(h, dtype=x.dtype)
    b2 = block.fc2.bias if block.fc2.bias is not None else torch.zeros(c, dtype=x.dtype)

    def mlp(z):
        return torch.relu(z @ w1.T + b1) @ w2.T + b2

    gap = x.sum((2, 3)) / (x.shape[2] * x.shape[3])
    gmp = x.flatten(2).max(2).values
    return x * torch.sigmoid(mlp(gap) + mlp(gmp))[:, :, None, None]


def cbam_reference(block, x, training):
    """y = x1 ⊙ σ(BN(conv([max_c x1; mean_c x1]))) ([mean; max] for timm)."""
    x1 = cbam_channel_reference(block, x)
    max_c, mean_c = x1.max(1, keepdim=True).values, x1.sum(1, keepdim=True) / x1.shape[1]
    pooled = torch.cat([max_c, mean_c] if block.variant == 'original' else [mean_c, max_c], 1)
    k = block.spatial_kernel
    s = F.conv2d(pooled, block.spatial_conv.weight, padding=k // 2)
    bn = block.spatial_bn
    return x1 * torch.sigmoid(bn_train(s, bn) if training else bn_eval(s, bn))


@pytest.mark.parametrize('variant', ['original', 'timm'])
@pytest.mark.parametrize('training', [True, False])
def test_cbam_equals_the_formula(variant, training):
    block = randomize_(CBAM(C, variant=variant), 0).double().train(training)
    x = x64()
    with torch.no_grad():
        torch.testing.assert_close(block(x), cbam_reference(block, x, training), rtol=1e-10,
                                   atol=1e-12)


@pytest.mark.parametrize('variant, momentum', [('original', 0.01), ('timm', 0.1)])
def test_cbam_spatial_bn_running_statistics_use_the_variants_momentum(variant, momentum):
    block = randomize_(CBAM(C, variant=variant), 0).double().train()
    bn = block.spatial_bn
    mean0, var0 = bn.running_mean.clone(), bn.running_var.clone()
    x = x64()
    with torch.no_grad():
        block(x)
        x1 = cbam_channel_reference(block, x)
        pools = [x1.max(1, keepdim=True).values, x1.mean(1, keepdim=True)]
        if variant == 'timm':
            pools.reverse()
        s = F.conv2d(torch.cat(pools, 1), block.spatial_conv.weight, padding=3)
    assert bn.momentum == momentum and bn.eps == 1e-5 and bn.affine
    torch.testing.assert_close(bn.running_mean, (1 - momentum) * mean0 + momentum * s.mean())
    torch.testing.assert_close(bn.running_var,
                               (1 - momentum) * var0 + momentum * s.var(unbiased=True))


def test_cbam_original_at_init_halves_the_channel_gated_map():
    block = CBAM(C).double().train()
    assert torch.all(block.spatial_bn.weight == 0) and torch.all(block.spatial_bn.bias == 0)
    assert torch.all(block.fc1.bias == 0) and torch.all(block.fc2.bias == 0)
    bn_out = []
    block.spatial_bn.register_forward_hook(lambda m, i, o: bn_out.append(o))
    x = x64()
    with torch.no_grad():
        x1 = cbam_channel_reference(block, x)
        for training in (True, False):  # eval: BN(·) = 0·(·) + 0 as well
            y = block.train(training)(x)
            assert torch.equal(torch.sigmoid(bn_out.pop()), torch.full((2, 1, 5, 6), 0.5,
                                                                       dtype=torch.float64))
            torch.testing.assert_close(y, x1 * 0.5, rtol=1e-12, atol=1e-14)
    # timm's BN starts at weight 1: its spatial map is not constant
    timm_block = CBAM(C, variant='timm').double().train()
    with torch.no_grad():
        ratio = timm_block(x) / cbam_channel_reference(timm_block, x)
    assert ratio.std() > 0.05


def test_cbam_original_init_is_the_authors():
    torch.manual_seed(0)
    # kaiming_normal(fan_out): std = sqrt(2 / (1·k²)); a large k gives enough samples
    w = CBAM(C, spatial_kernel=41).spatial_conv.weight
    assert w.std().item() == pytest.approx(math.sqrt(2 / 41**2), rel=0.1)
    assert w.mean().abs().item() < 0.1 * math.sqrt(2 / 41**2)
    # the MLP keeps PyTorch's Linear default: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    block = CBAM(256)
    for fc, fan_in in ((block.fc1, 256), (block.fc2, 16)):
        assert isinstance(fc, nn.Linear) and fc.weight.abs().max() <= 1 / math.sqrt(fan_in)
        assert fc.weight.std() > 0.4 / math.sqrt(fan_in)


@pytest.mark.parametrize('variant', ['original', 'timm'])
def test_cbam_init_weights_after_a_backbones_generic_init(variant):
    block = randomize_(CBAM(C, variant=variant), 0)
    # what a backbone does first: Kaiming for every Conv2d, BN weight 1 and bias 0
    for m in block.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    before = {k: v.clone() for k, v in block.state_dict().items()}
    block.init_weights()
    after = block.state_dict()
    if variant == 'timm':  # nothing to override
        assert all(torch.equal(before[k], after[k]) for k in before)
        return
    assert torch.all(block.spatial_bn.weight == 0) and torch.all(block.spatial_bn.bias == 0)
    assert torch.all(block.fc1.bias == 0) and torch.all(block.fc2.bias == 0)
    assert torch.equal(after['fc1.weight'], before['fc1.weight'])  # not re-randomised
    assert torch.equal(after['fc2.weight'], before['fc2.weight'])
    assert not torch.equal(after['spatial_conv.weight'], before['spatial_conv.weight'])
    x = torch.randn(2, C, 5, 6)
    with torch.no_grad():
        torch.testing.assert_close(block(x), cbam_channel_reference(block, x) * 0.5)


def cbam_params_original(c, r=16, k=7):
    return 2 * c * (c // r) + c // r + c + 2 * k * k + 2


@pytest.mark.parametrize('c', R50_WIDTHS)
def test_cbam_parameter_count_resnet50_widths(c):
    assert n_params(CBAM(c)) == 2 * c * c // 16 + c // 16 + c + 98 + 2 == cbam_params_original(c)
    assert n_params(CBAM(c, variant='timm')) == 2 * c * c // 16 + 98 + 2
    assert n_params(CBAM(c, 8, 3)) == cbam_params_original(c, 8, 3)


def test_cbam_resnet50_total():
    added = sum(n * n_params(CBAM(c)) for c, n in zip(R50_WIDTHS, R50_BLOCKS))
    assert added == 2_532_592 and R50 + added == 28_089_624


def test_cbam_parameter_count_when_r_does_not_divide_c():
    # original floors C / r: 200 // 16 = 12; timm rounds half up: round(12.5) = 13
    assert CBAM(200).hidden_channels == 12 and CBAM(200, variant='timm').hidden_channels == 13
    assert n_params(CBAM(200)) == 2 * 200 * 12 + 12 + 200 + 100 == 5112
    assert n_params(CBAM(200, variant='timm')) == 2 * 200 * 13 + 100 == 5300
    assert CBAM(24, variant='timm').hidden_channels == 2 and CBAM(24).hidden_channels == 1
    assert CBAM(8, variant='timm').hidden_channels == 1


@pytest.mark.parametrize('shape', [(2, C, 5, 6), (2, C, 1, 1), (3, C, 9, 4)])
@pytest.mark.parametrize('variant', ['original', 'timm'])
def test_cbam_shape(shape, variant):
    y = CBAM(C, variant=variant).train()(torch.randn(shape))
    assert y.shape == shape and torch.isfinite(y).all()


# ---------------------------------------------------------------------------------------------
# Cross-checks against timm and mmpretrain
# ---------------------------------------------------------------------------------------------
def timm_cbam_with_our_weights(block):
    timm_cbam = pytest.importorskip('timm.layers.cbam')  # not re-exported by timm.layers
    ref = timm_cbam.CbamModule(
        block.in_channels, rd_ratio=1. / block.reduction,
        spatial_kernel_size=block.spatial_kernel).double()
    assert ref.channel.fc1.out_channels == block.hidden_channels
    sd = block.state_dict()
    mapped = {'channel.fc1.weight': sd['fc1.weight'], 'channel.fc2.weight': sd['fc2.weight'],
              'spatial.conv.conv.weight': sd['spatial_conv.weight']}
    mapped.update({f'spatial.conv.bn.{k[len("spatial_bn."):]}': v for k, v in sd.items()
                   if k.startswith('spatial_bn.')})
    ref.load_state_dict(mapped)
    return ref


@pytest.mark.parametrize('c, r', [(C, 16), (200, 16), (24, 16), (48, 4)])
@pytest.mark.parametrize('training', [True, False])
def test_cbam_timm_variant_equals_timm_cbam_module(c, r, training):
    block = randomize_(CBAM(c, r, variant='timm'), 0).double().train(training)
    ref = timm_cbam_with_our_weights(block).train(training)
    assert ref.spatial.conv.bn.momentum == block.spatial_bn.momentum == 0.1
    x = x64((2, c, 5, 6))
    with torch.no_grad():
        torch.testing.assert_close(block(x), ref(x), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(block.spatial_bn.running_mean, ref.spatial.conv.bn.running_mean)
    torch.testing.assert_close(block.spatial_bn.running_var, ref.spatial.conv.bn.running_var)
    # the original variant is a different function of the same weights (no MLP bias aside)
    original = CBAM(c, r).double().train(training)
    if original.hidden_channels == block.hidden_channels:
        with torch.no_grad():
            original.fc1.weight.copy_(block.fc1.weight.flatten(1))
            original.fc2.weight.copy_(block.fc2.weight.flatten(1))
            original.spatial_conv.weight.copy_(block.spatial_conv.weight)
            original.spatial_bn.load_state_dict(block.spatial_bn.state_dict())
            assert not torch.allclose(original(x), block(x))


@pytest.mark.parametrize('c', [64, 256, 2048, 12])
def test_eca_equals_timm_eca_module(c):
    timm_layers = pytest.importorskip('timm.layers')
    ref = timm_layers.EcaModule(c).double()
    block = randomize_(ECA(c), 0).double()
    assert block.kernel_size == ref.conv.kernel_size[0] == eca_kernel_size(c)
    ref.load_state_dict(block.state_dict())
    x = x64((2, c, 5, 6))
    with torch.no_grad():
        torch.testing.assert_close(block(x), ref(x), rtol=1e-10, atol=1e-12)


def copy_se_into(ref, fc1, fc2, se):
    with torch.no_grad():
        for dst, src in ((fc1, se.fc1), (fc2, se.fc2)):
            dst.weight.copy_(src.weight)
            dst.bias.copy_(src.bias)
    return ref


@pytest.mark.parametrize('c, hidden', [(64, 8), (256, 16)])
def test_se_divisor_8_equals_timm_se_module(c, hidden):
    timm_layers = pytest.importorskip('timm.layers')
    se = randomize_(SE(c, divisor=8), 0).double()
    ref = timm_layers.SEModule(c).double()
    assert se.fc1.out_channels == ref.fc1.out_channels == hidden
    copy_se_into(ref, ref.fc1, ref.fc2, se)
    x = x64((2, c, 5, 6))
    with torch.no_grad():
        torch.testing.assert_close(se(x), ref(x), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize('c, hidden', [(64, 8), (256, 16)])
def test_se_divisor_8_equals_mmpretrain_se_layer(c, hidden):
    utils = pytest.importorskip('mmpretrain.models.utils')
    se = randomize_(SE(c, divisor=8), 0).double()
    ref = utils.SELayer(c).double()
    assert se.fc1.out_channels == ref.conv1.conv.out_channels == hidden
    copy_se_into(ref, ref.conv1.conv, ref.conv2.conv, se)
    x = x64((2, c, 5, 6))
    with torch.no_grad():
        torch.testing.assert_close(se(x), ref(x), rtol=1e-10, atol=1e-12)


def test_se_rounding_matches_mmpretrain_and_differs_from_timm_where_documented():
    timm_helpers = pytest.importorskip('timm.layers.helpers')
    mm_make_divisible = pytest.importorskip(
        'mmpretrain.models.utils.make_divisible').make_divisible
    differ = []
    for c in range(1, 2049):
        hidden = make_divisible(c // 16, 8)
        assert hidden == mm_make_divisible(c // 16, 8)
        if hidden != timm_helpers.make_divisible(c / 16, 8, round_limit=0.):
            differ.append(c // 16)
        if c in (64, 176, 300, 440, 2048):
            assert SE(c, divisor=8).fc1.out_channels == hidden
    # mmpretrain's "at most 10% below" rule adds a divisor; timm's round_limit=0 does not
    assert sorted(set(differ)) == [9, 10, 11, 18, 19, 27]
    assert SE(176, divisor=8).fc1.out_channels == 16
    assert timm_helpers.make_divisible(176 / 16, 8, round_limit=0.) == 8


# ---------------------------------------------------------------------------------------------
# ECA
# ---------------------------------------------------------------------------------------------
def eca_reference(block, x):
    """a_c = σ(Σ_j w_j z_{c+j-p}), z zero-padded by p = (k-1)/2 on both ends."""
    b, c = x.shape[:2]
    k = block.kernel_size
    p = (k - 1) // 2
    w = block.conv.weight.flatten()
    z = torch.cat([x.new_zeros(b, p), x.sum((2, 3)) / (x.shape[2] * x.shape[3]),
                   x.new_zeros(b, p)], 1)
    logits = sum(w[j] * z[:, j:j + c] for j in range(k))
    return x * torch.sigmoid(logits)[:, :, None, None]


@pytest.mark.parametrize('kernel_size', [None, 1, 3, 7, 41])
def test_eca_equals_the_formula(kernel_size):
    block = randomize_(ECA(C, kernel_size), 0).double()
    x = x64()
    with torch.no_grad():
        torch.testing.assert_close(block(x), eca_reference(block, x), rtol=1e-10, atol=1e-12)


def test_eca_kernel_size_formula_table():
    # t = int((log2 C + 1) / 2): 64 → 3.5 → 3; 128 → 4 → 5; 256 → 4.5 → 4 → 5; 512 → 5;
    # 1024 → 5.5 → 5; 2048 → 6 → 7
    expected = {64: 3, 128: 5, 256: 5, 512: 5, 1024: 5, 2048: 7}
    for c, k in expected.items():
        assert eca_kernel_size(c) == k == ECA(c).kernel_size
        assert eca_kernel_size(c, min_size=1) == k  # SEM's unclamped copy agrees here
    # the clamp only bites below C = 8
    assert [eca_kernel_size(c) for c in (1, 2, 4, 7, 8, 16)] == [3, 3, 3, 3, 3, 3]
    assert [eca_kernel_size(c, min_size=1) for c in (1, 2, 4, 7, 8, 16)] == [1, 1, 1, 1, 3, 3]
    # other γ, b: t = int((log2 256 + 3) / 1) = 11
    assert eca_kernel_size(256, gamma=1, beta=3) == 11 == ECA(256, gamma=1, beta=3).kernel_size


def test_eca_resnet50_kernels_and_parameters():
    formula = tuple(ECA(c).kernel_size for c in R50_WIDTHS)
    assert formula == (5, 5, 5, 7)
    assert sum(n * k for n, k in zip(R50_BLOCKS, formula)) == 86
    authors = tuple(n_params(ECA(c, k)) for c, k in zip(R50_WIDTHS, (3, 5, 5, 7)))
    assert authors == (3, 5, 5, 7) and R50 + sum(
        n * k for n, k in zip(R50_BLOCKS, authors)) == 25_557_112


@pytest.mark.parametrize('k', [1, 3, 5, 9])
def test_eca_explicit_kernel_size_and_parameter_count(k):
    block = ECA(C, kernel_size=k)
    assert block.kernel_size == k and n_params(block) == k
    assert block.conv.padding == ((k - 1) // 2, ) and block.conv.bias is None
    assert block(torch.randn(SHAPE)).shape == SHAPE
    assert ECA(4, k)(torch.randn(2, 4, 3, 3)).shape == (2, 4, 3, 3)  # k may exceed C


def test_eca_conv_keeps_pytorch_default_init():
    torch.manual_seed(0)
    w = ECA(C, 41).conv.weight  # kaiming_uniform(a=√5): U(±1/sqrt(fan_in)), fan_in = k
    assert w.abs().max() <= 1 / math.sqrt(41) and w.std() > 0.4 / math.sqrt(41)


@pytest.mark.parametrize('bad', [0, -3, 2, 4, 3.0, True, '3'])
def test_eca_bad_kernel_size(bad):
    with pytest.raises(ValueError, match=re.escape(
            f'kernel_size must be a positive odd int or None, got {bad!r}')):
        ECA(C, bad)


def test_eca_bad_gamma_beta():
    with pytest.raises(ValueError, match='gamma must be a positive number, got 0'):
        ECA(C, gamma=0)
    with pytest.raises(ValueError, match='beta must be a finite number, got nan'):
        ECA(C, beta=float('nan'))


# ---------------------------------------------------------------------------------------------
# SE (defaults unchanged)
# ---------------------------------------------------------------------------------------------
def test_se_default_is_senet_and_divisor_changes_only_the_width():
    assert SE(64).fc1.out_channels == 4 and SE(64, divisor=8).fc1.out_channels == 8
    assert SE(8).fc1.out_channels == 1
    assert [SE(c).fc1.out_channels for c in R50_WIDTHS] == [16, 32, 64, 128]
    assert [SE(c, divisor=8).fc1.out_channels for c in R50_WIDTHS] == [16, 32, 64, 128]
    assert list(SE(C).state_dict()) == ['fc1.weight', 'fc1.bias', 'fc2.weight', 'fc2.bias']
    assert n_params(SE(64, divisor=8)) == 2 * 64 * 8 + 8 + 64
    assert sum(n * n_params(SE(c)) for c, n in zip(R50_WIDTHS, R50_BLOCKS)) + R50 == 28_088_024
    se = randomize_(SE(64, divisor=8), 0).double()
    x = x64((2, 64, 5, 6))
    w1, b1 = se.fc1.weight.reshape(8, 64), se.fc1.bias
    w2, b2 = se.fc2.weight.reshape(64, 8), se.fc2.bias
    gap = x.sum((2, 3)) / 30
    expected = x * torch.sigmoid(torch.relu(gap @ w1.T + b1) @ w2.T + b2)[:, :, None, None]
    with torch.no_grad():
        torch.testing.assert_close(se(x), expected, rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# Errors, placement attributes, registration
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize('block', [CBAM, ECA, SE])
@pytest.mark.parametrize('bad', [0, -1, 2.5, True])
def test_bad_in_channels(block, bad):
    with pytest.raises(ValueError, match=f'in_channels must be a positive int, got {bad!r}'):
        block(bad)


@pytest.mark.parametrize('block', [CBAM, SE])
@pytest.mark.parametrize('bad', [0, -16, 1.5])
def test_bad_reduction(block, bad):
    with pytest.raises(ValueError, match=f'reduction must be a positive int, got {bad!r}'):
        block(C, bad)


def test_cbam_reduction_larger_than_channels():
    with pytest.raises(ValueError, match=r'reduction must be at most in_channels \(8\).*got 16'):
        CBAM(8)
    assert CBAM(8, variant='timm').hidden_channels == 1  # timm rounds up to 1


def test_cbam_unknown_variant_and_bad_kernel():
    with pytest.raises(ValueError, match="variant must be one of 'original', 'timm', got 'cbam'"):
        CBAM(C, variant='cbam')
    with pytest.raises(ValueError, match='spatial_kernel must be odd, got 6'):
        CBAM(C, spatial_kernel=6)
    with pytest.raises(ValueError, match='spatial_kernel must be a positive int, got 0'):
        CBAM(C, spatial_kernel=0)


def test_se_bad_divisor():
    with pytest.raises(ValueError, match='divisor must be a positive int, got 0'):
        SE(C, divisor=0)


def test_placement_attributes():
    for block, abbr in ((CBAM, 'cbam'), (ECA, 'eca'), (SE, 'se')):
        assert issubclass(block, AttentionBlock) and block._abbr_ == abbr
        assert block.position == AFTER_LAST_NORM and block.blocks == ALL_BLOCKS
        assert block.positions == (AFTER_LAST_NORM, )


def test_registered_and_buildable_as_mmcv_plugins():
    from mmcv.cnn import build_plugin_layer
    from mmengine.registry import MODELS
    for block in (CBAM, ECA, SE):
        assert MODELS.get(block.__name__) is block
    for cfg, cls in ((dict(type='CBAM', variant='timm'), CBAM), (dict(type='ECA'), ECA),
                     (dict(type='SE', divisor=8), SE)):
        name, layer = build_plugin_layer(cfg, postfix='_2', in_channels=64)
        assert name == cls._abbr_ + '_2' and type(layer) is cls and layer.in_channels == 64
    assert 'variant=\'timm\'' in repr(MODELS.build(dict(type='CBAM', in_channels=C,
                                                        variant='timm')))
