"""SRM, GSoP and MCA blocks (spec BASELINES_CODE.md §4, §5, §7) against their formulas written
out here with plain tensor operations and the blocks' weights, in float64."""
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.registry import MODELS

from mmsase.models.plugins.base import AFTER_LAST_NORM, ALL_BLOCKS, LAST_BLOCK, AttentionBlock
from mmsase.models.plugins.gsop import GSoP
from mmsase.models.plugins.mca import MCA
from mmsase.models.plugins.srm import SRM

from .helpers import randomize_, single_thread  # noqa: F401 (autouse fixture)

R50_CHANNELS = [256] * 3 + [512] * 4 + [1024] * 6 + [2048] * 3  # out channels of its 16 blocks


def bn_ref(v, bn, training):
    """BatchNorm over dim 1 of ``v (B, C, ...)``: batch statistics (biased variance) in train
    mode, running statistics in eval mode."""
    shape = (1, -1) + (1, ) * (v.dim() - 2)
    if training:
        dims = [0] + list(range(2, v.dim()))
        mean = v.mean(dims, keepdim=True)
        var = ((v - mean)**2).mean(dims, keepdim=True)
    else:
        mean, var = bn.running_mean.view(shape), bn.running_var.view(shape)
    return (v - mean) / torch.sqrt(var + bn.eps) * bn.weight.view(shape) + bn.bias.view(shape)


def n_params(module):
    return sum(p.numel() for p in module.parameters())


def randn(*shape, seed=0):
    return torch.randn(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------------------------------
# SRM


def srm_ref(block, x, training):
    b, c, h, w = x.shape
    n = h * w
    flat = x.reshape(b, c, n)
    mean = flat.sum(2) / n
    var = ((flat - mean[..., None])**2).sum(2) / (n - 1)  # unbiased
    std = torch.sqrt(var + 1e-5)
    z = block.cfc[:, 0] * mean + block.cfc[:, 1] * std  # (B, C)
    return x * torch.sigmoid(bn_ref(z, block.bn, training))[..., None, None]


def test_srm_is_half_x_at_init_in_train_mode():
    block = SRM(8).train()
    assert torch.count_nonzero(block.cfc) == 0
    x = torch.randn(4, 8, 5, 6)
    assert torch.equal(block(x), 0.5 * x)


@pytest.mark.parametrize('training', [True, False])
@pytest.mark.parametrize('shape', [(4, 6, 5, 7), (3, 6, 1, 2)])
def test_srm_matches_formula(training, shape):
    block = randomize_(SRM(6), 1).double().train(training)
    x = randn(*shape, seed=2) * 2 + 0.5
    with torch.no_grad():
        torch.testing.assert_close(block(x), srm_ref(block, x, training), rtol=1e-12, atol=1e-12)


def test_srm_variance_is_unbiased():
    block = SRM(1).double().eval()
    with torch.no_grad():
        block.cfc.copy_(torch.tensor([[0., 1.]]))  # z = s
    x = torch.tensor([[[[1., 2.], [3., 4.]]]], dtype=torch.float64)
    # mean 2.5, squared deviations 2.25 + 0.25 + 0.25 + 2.25 = 5, unbiased variance 5/3
    s = math.sqrt(5 / 3 + 1e-5)
    gate = 1 / (1 + math.exp(-s / math.sqrt(1 + block.bn.eps)))  # eval BN: mean 0, var 1
    torch.testing.assert_close(block(x), x * gate, rtol=1e-14, atol=0)
    biased_gate = 1 / (1 + math.exp(-math.sqrt(1.25 + 1e-5) / math.sqrt(1 + block.bn.eps)))
    assert abs(gate - biased_gate) > 1e-2


def test_srm_params_and_weight_decay_names():
    for c in (1, 7, 256, 2048):
        assert n_params(SRM(c)) == 4 * c
    assert sum(n_params(SRM(c)) for c in R50_CHANNELS) == 60_416  # 25,617,448 − 25,557,032
    block = SRM(8)
    assert sorted(SRM.no_weight_decay) == sorted(n for n, _ in block.named_parameters())


def test_srm_rejects_a_single_position():
    block = SRM(8)
    with pytest.raises(ValueError, match=r'H·W ≥ 2.*\(2, 8, 1, 1\)'):
        block(torch.randn(2, 8, 1, 1))


def test_srm_init_weights_restores_the_authors_init():
    block = randomize_(SRM(8), 3)
    block.init_weights()
    assert torch.count_nonzero(block.cfc) == 0
    assert torch.equal(block.bn.weight, torch.ones(8))
    assert torch.equal(block.bn.bias, torch.zeros(8))


# ------------------------------------------------------------------------------------------
# GSoP


def gsop_ref(block, x, training):
    d, s = block.reduced_channels, block.reduction_stride
    a = x.clamp_min(0)[:, :, ::s, ::s]  # a strided 1×1 conv reads every s-th position
    f = torch.einsum('dc,bchw->bdhw', block.conv_for_DR.weight[:, :, 0, 0], a)
    f = bn_ref(f + block.conv_for_DR.bias.view(1, -1, 1, 1), block.bn_for_DR, training)
    feats = f.clamp_min(0).flatten(2)  # (B, d, M)
    m = feats.shape[2]
    centred = feats - feats.sum(2, keepdim=True) / m
    cov = torch.zeros(x.shape[0], d, d, dtype=x.dtype)
    for p in range(m):
        cov += centred[:, :, p, None] * centred[:, None, :, p]
    cov /= m
    rows = bn_ref(cov[..., None], block.row_bn, training)[..., 0]  # BN channel = row
    kernel, bias = block.row_conv_group.weight[:, 0, :, 0], block.row_conv_group.bias  # (4d, d)
    r = torch.stack([(rows[:, o // 4] * kernel[o]).sum(1) for o in range(4 * d)], 1) + bias
    # the authors' op: a grouped conv with a (d, 1) kernel (4 outputs per row)
    grouped = F.conv2d(rows[..., None], block.row_conv_group.weight, bias, groups=d)
    torch.testing.assert_close(grouped.flatten(1), r, rtol=1e-12, atol=1e-12)
    att = r @ block.fc_adapt_channels.weight[:, :, 0, 0].T + block.fc_adapt_channels.bias
    return x * torch.sigmoid(att)[..., None, None]


@pytest.mark.parametrize('training', [True, False])
@pytest.mark.parametrize('stride,shape', [(1, (3, 12, 5, 7)), (2, (3, 12, 5, 7)),
                                          (2, (2, 12, 1, 1))])
def test_gsop_matches_formula(training, stride, shape):
    block = randomize_(GSoP(12, reduced_channels=8, reduction_stride=stride), 4)
    block = block.double().train(training)
    x = randn(*shape, seed=5)
    with torch.no_grad():
        torch.testing.assert_close(block(x), gsop_ref(block, x, training), rtol=1e-10, atol=1e-12)


def test_gsop_covariance_is_the_authors_covpool():
    f = randn(2, 5, 3, 4, seed=6)
    x = f.flatten(2)
    m = x.shape[2]
    i_hat = (torch.eye(m, dtype=x.dtype) - torch.full((m, m), 1 / m, dtype=x.dtype)) / m
    torch.testing.assert_close(GSoP(4, 5).covariance(f),
                               x @ i_hat @ x.transpose(1, 2),
                               rtol=1e-12,
                               atol=1e-12)


def test_gsop_covariance_is_float32_under_autocast():
    block = GSoP(4, 5)
    f = torch.randn(2, 5, 3, 4).to(torch.bfloat16)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        assert block.covariance(f).dtype == torch.float32
    assert block.covariance(f).dtype == torch.bfloat16
    x = torch.randn(2, 4, 6, 6)
    block.eval()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        y = block(x)
    assert y.dtype == torch.float32
    torch.testing.assert_close(y, block(x), rtol=0.05, atol=0.05)


@pytest.mark.parametrize('c', [256, 512, 1024, 2048])
def test_gsop_params_per_block(c):
    d = 128
    assert 5 * d * c + c + 4 * d * d + 9 * d == 641 * c + 66_688
    assert n_params(GSoP(c)) == 641 * c + 66_688


def test_gsop_resnet50_total_and_placement():
    assert sum(641 * c + 66_688 for c in (256, 512, 1024, 2048)) == 2_728_192
    assert 25_557_032 + 2_728_192 == 28_285_224
    assert GSoP.blocks == LAST_BLOCK == 'last'
    assert GSoP.position == AFTER_LAST_NORM and GSoP._abbr_ == 'gsop'


def test_gsop_init_is_the_authors():
    torch.manual_seed(0)
    block = GSoP(256)
    # backbone generic init: conv biases 0, then the block re-applies its own
    for conv in (block.conv_for_DR, block.row_conv_group, block.fc_adapt_channels):
        nn.init.zeros_(conv.bias)
    block.init_weights()
    d = 128
    for conv, fan_out, fan_in in ((block.conv_for_DR, d, 256), (block.row_conv_group, 4 * d * d, d),
                                  (block.fc_adapt_channels, 256, 4 * d)):
        assert conv.weight.std().item() == pytest.approx(math.sqrt(2 / fan_out), rel=0.05)
        bound = 1 / math.sqrt(fan_in)
        assert conv.bias.abs().max() <= bound and conv.bias.abs().max() > bound / 2
    for bn in (block.bn_for_DR, block.row_bn):
        assert torch.equal(bn.weight, torch.ones(d)) and torch.equal(bn.bias, torch.zeros(d))


# ------------------------------------------------------------------------------------------
# MCA


def mca_ref(block, x):
    b, c, h, w = x.shape
    n = h * w
    flat = x.reshape(b, c, n)
    mean = flat.sum(2) / n
    centred = flat - mean[..., None]
    std = torch.sqrt((centred**2).sum(2) / n)
    if block.moment == 'std':
        second = std
    else:
        second = (centred**3).sum(2) / n / (std**3 + 1e-5)
    k = block.kernel_size
    signal = F.pad(torch.stack((mean, second), 1), (k // 2, k // 2))  # (B, 2, C + k − 1)
    weight = block.conv.weight[0]  # (2, k)
    logits = block.conv.bias + sum(weight[i, t] * signal[:, i, t:t + c] for i in range(2)
                                   for t in range(k))
    return x * torch.sigmoid(logits)[..., None, None]


@pytest.mark.parametrize('moment,kernel_size', [('std', 3), ('skew', 3), ('skew', 7), ('std', 5)])
@pytest.mark.parametrize('shape', [(3, 10, 5, 7), (2, 10, 1, 1)])
def test_mca_matches_formula(moment, kernel_size, shape):
    block = randomize_(MCA(10, moment, kernel_size), 7).double()
    x = randn(*shape, seed=8) * 1.5 + 0.3
    with torch.no_grad():
        torch.testing.assert_close(block(x), mca_ref(block, x), rtol=1e-12, atol=1e-12)


def centre_tap_block(moment):
    """An MCA block whose gate is σ(second statistic) of the same channel."""
    block = MCA(3, moment).double()
    with torch.no_grad():
        block.conv.weight.zero_()
        block.conv.weight[0, 1, 1] = 1.
        block.conv.bias.zero_()
    return block


def test_mca_skew_on_a_hand_made_tensor():
    # channel 0: three 0s and a 3 (a scaled Bernoulli(1/4): skewness (1 − 2p)/sqrt(p(1 − p)) =
    # 2/√3); channel 1: its negation (−2/√3); channel 2: symmetric (0)
    x = torch.tensor([[[[0., 0.], [0., 3.]], [[0., 0.], [0., -3.]], [[-1., 1.], [1., -1.]]]],
                     dtype=torch.float64)
    third, sigma = 10.125 / 4, math.sqrt(6.75 / 4)  # Σ(x − μ)³ = 10.125, Σ(x − μ)² = 6.75
    skew = third / (sigma**3 + 1e-5)
    assert skew == pytest.approx(2 / math.sqrt(3), rel=1e-5)
    expected = torch.sigmoid(torch.tensor([skew, -skew, 0.], dtype=torch.float64))
    torch.testing.assert_close(centre_tap_block('skew')(x),
                               x * expected.view(1, 3, 1, 1),
                               rtol=1e-14,
                               atol=1e-15)
    # the std variant on the same tensor: biased std, no eps
    expected = torch.sigmoid(torch.tensor([sigma, sigma, 1.], dtype=torch.float64))
    torch.testing.assert_close(centre_tap_block('std')(x),
                               x * expected.view(1, 3, 1, 1),
                               rtol=1e-14,
                               atol=1e-15)


def test_mca_gradient_at_a_constant_channel_is_finite():
    for moment in ('std', 'skew'):
        x = randn(2, 4, 3, 3, seed=9)
        x[:, 1] = 2.  # std exactly 0
        x.requires_grad_(True)
        randomize_(MCA(4, moment), 10).double()(x).sum().backward()
        assert torch.isfinite(x.grad).all()


def test_mca_params():
    assert n_params(MCA(64)) == n_params(MCA(2048, 'skew')) == 7
    assert n_params(MCA(64, 'skew', 7)) == 15
    assert sum(n_params(MCA(c)) for c in R50_CHANNELS) == 112
    assert MCA.blocks == ALL_BLOCKS and MCA.position == AFTER_LAST_NORM and MCA._abbr_ == 'mca'


def test_mca_init_weights_redraws_pytorch_defaults():
    block = MCA(8, kernel_size=3)
    nn.init.zeros_(block.conv.weight)
    nn.init.zeros_(block.conv.bias)
    block.init_weights()
    bound = 1 / math.sqrt(2 * 3)
    assert 0 < block.conv.weight.abs().max() <= bound and block.conv.bias.abs().max() <= bound


# ------------------------------------------------------------------------------------------
# All three

BUILDERS = {
    'SRM': lambda: SRM(6),
    'GSoP': lambda: GSoP(6, reduced_channels=3, reduction_stride=2),
    'MCA-std': lambda: MCA(6),
    'MCA-skew': lambda: MCA(6, 'skew'),
}


@pytest.mark.parametrize('name', list(BUILDERS))
def test_registered_attention_blocks(name):
    block = BUILDERS[name]()
    assert isinstance(block, AttentionBlock)
    assert MODELS.get(type(block).__name__) is type(block)
    built = MODELS.build(dict(type=type(block).__name__, in_channels=6))
    assert type(built) is type(block)


@pytest.mark.parametrize('name', list(BUILDERS))
@pytest.mark.parametrize('training', [True, False])
def test_layouts_and_dtypes(name, training):
    block = randomize_(BUILDERS[name](), 11).train(training)
    x = torch.randn(2, 6, 5, 4)
    with torch.no_grad():
        y = block(x)
        assert y.shape == x.shape and y.dtype == x.dtype and torch.isfinite(y).all()
        for variant in (x.to(memory_format=torch.channels_last),
                        x.transpose(2, 3).contiguous().transpose(2, 3)):
            torch.testing.assert_close(block(variant), y, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('name', list(BUILDERS))
def test_gradcheck(name):
    block = randomize_(BUILDERS[name](), 12).double().eval()
    x = randn(2, 6, 3, 4, seed=13).requires_grad_(True)
    assert torch.autograd.gradcheck(block, (x, ), eps=1e-6, atol=1e-6)


@pytest.mark.parametrize('build,match', [
    (lambda: SRM(0), r'in_channels.*got 0'),
    (lambda: SRM(2.5), r'in_channels.*got 2\.5'),
    (lambda: GSoP(-4), r'in_channels.*got -4'),
    (lambda: GSoP(64, reduced_channels=0), r'reduced_channels.*got 0'),
    (lambda: GSoP(64, reduction_stride=0), r'reduction_stride.*got 0'),
    (lambda: GSoP(64, reduction_stride=True), r'reduction_stride.*got True'),
    (lambda: MCA(0), r'in_channels.*got 0'),
    (lambda: MCA(8, 'kurtosis'), r"moment.*got 'kurtosis'"),
    (lambda: MCA(8, kernel_size=4), r'kernel_size.*odd.*got 4'),
    (lambda: MCA(8, kernel_size=-3), r'kernel_size.*got -3'),
    (lambda: MCA(8, kernel_size=3.0), r'kernel_size.*got 3\.0'),
])
def test_bad_arguments(build, match):
    with pytest.raises(ValueError, match=match):
        build()
