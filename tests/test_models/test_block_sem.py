"""SEM, the switchable excitation module (BASELINES_CODE.md §10, Qrange-group/SEM @db5e194d).

The block against its formula written out here with plain torch ops on its own weights
(float64), its initialisation, its parameter count and the decision it exposes.
"""
import math

import pytest
import torch
import torch.nn as nn

from mmsase.models.backbones import CifarResNet
from mmsase.models.plugins import SEM, build_attention
from mmsase.models.plugins.base import AFTER_LAST_NORM, AttentionBlock
from mmsase.models.plugins.sem import SEM_OPERATORS

from .helpers import randomize_, single_thread  # noqa: F401 (autouse fixture)

SHAPE = (3, 64, 5, 6)


def x64(shape=SHAPE, seed=1):
    g = torch.Generator().manual_seed(seed)
    # per-channel offsets, so that the GAPs differ from channel to channel
    return (torch.randn(shape, generator=g, dtype=torch.float64)
            + torch.randn(shape[:2] + (1, 1), generator=g, dtype=torch.float64))


def n_params(module):
    return sum(p.numel() for p in module.parameters())


def sem_reference(block, x):
    """The authors' forward written out per channel: returns (y, w)."""
    b, c = x.shape[:2]
    z = x.sum((2, 3)) / (x.shape[2] * x.shape[3])  # (B, C)
    w = torch.sigmoid(z @ block.switch_fc.weight.T + block.switch_fc.bias)  # (B, 3)
    fc = torch.relu(z @ block.fc1.weight.T + block.fc1.bias) @ block.fc2.weight.T \
        + block.fc2.bias
    kernel = block.conv.weight.flatten()
    k = kernel.numel()
    eca = torch.zeros_like(z)
    for channel in range(c):  # cross-correlation over channels, zero padding k // 2
        for j in range(k):
            source = channel + j - k // 2
            if 0 <= source < c:
                eca[:, channel] += kernel[j] * z[:, source]
    ie = z * block.ie_weight + block.ie_bias
    a = (torch.sigmoid(w[:, 0:1] * fc) * torch.sigmoid(w[:, 1:2] * eca)
         * torch.sigmoid(w[:, 2:3] * ie))
    return x * a[:, :, None, None], w


def record_decision(block):
    seen = []
    handle = block.decision.register_forward_hook(lambda m, args, out: seen.append(out))
    return seen, handle


@pytest.mark.parametrize('channels', [64, 128, 256])
def test_sem_matches_the_formula(channels):
    block = randomize_(SEM(channels), seed=channels).double()
    x = x64((3, channels, 4, 5))
    seen, handle = record_decision(block)
    y = block(x)
    handle.remove()
    expected, w = sem_reference(block, x)
    torch.testing.assert_close(y, expected, rtol=1e-10, atol=1e-12)
    # the decision the hook sees is w (B, 3), one weight per operator, in (0, 1)
    assert len(seen) == 1 and seen[0].shape == (3, len(SEM_OPERATORS))
    torch.testing.assert_close(seen[0], w, rtol=1e-12, atol=1e-14)
    assert ((w > 0) & (w < 1)).all()
    # no operator is inert with these weights: each changes the output
    for name in ('fc2.weight', 'conv.weight', 'ie_bias', 'switch_fc.bias'):
        other = randomize_(SEM(channels), seed=channels).double()
        with torch.no_grad():
            other.get_parameter(name).add_(1.0)
        assert not torch.allclose(other(x), y), name


def test_kernel_sizes_hidden_width_and_parameter_count():
    """ECA's formula without the clamp (3, 5, 5), C/16 hidden units (round(planes/4)), and
    C²/8 + C/16 + 6C + 3 + k parameters."""
    expected = {64: (3, 4, 906), 128: (5, 8, 2832), 256: (5, 16, 9752)}
    for c, (k, hidden, count) in expected.items():
        block = SEM(c)
        assert block.kernel_size == k and block.conv.padding == (k // 2, )
        assert block.fc1.out_features == hidden
        assert block.conv.bias is None and block.fc1.bias is not None
        assert n_params(block) == c * c // 8 + c // 16 + 6 * c + 3 + k == count
    assert SEM(4).kernel_size == 1  # timm's ECA would clamp it to 3
    assert SEM(16).kernel_size == 3 and SEM(16).fc1.out_features == 1
    assert SEM(8).fc1.out_features == 1  # round(0.5) = 0, kept at one unit


def test_at_initialisation_the_ie_logit_is_minus_w2_for_every_channel():
    torch.manual_seed(0)
    block = SEM(64).double()
    assert torch.equal(block.ie_weight, torch.zeros(64, dtype=torch.float64))
    assert torch.equal(block.ie_bias, torch.full((64, ), -1.0, dtype=torch.float64))
    with torch.no_grad():  # silence FC and ECA: their logits are 0, their maps 0.5
        block.fc2.weight.zero_()
        block.fc2.bias.zero_()
        block.conv.weight.zero_()
    x = x64()
    seen, handle = record_decision(block)
    y = block(x)
    handle.remove()
    w2 = seen[0][:, 2]
    scale = y / x  # (B, C, H, W): one value per sample, the same for every channel
    expected = 0.25 * torch.sigmoid(-w2)
    torch.testing.assert_close(scale, expected[:, None, None, None].expand_as(scale))
    assert (w2 > 0).all() and (w2 < 1).all()


def test_init_weights_restores_the_authors_init_after_a_backbone_init():
    net = CifarResNet(depth=29, block='bottleneck', attention=dict(type='mmsase.SEM'))
    blocks = [m for m in net.modules() if isinstance(m, SEM)]
    assert len(blocks) == 9
    with torch.no_grad():
        for block in blocks:
            for p in block.parameters():
                p.fill_(7.0)
    net.init_weights()
    for block in blocks:
        assert torch.equal(block.ie_weight, torch.zeros_like(block.ie_weight))
        assert torch.equal(block.ie_bias, torch.full_like(block.ie_bias, -1.0))
        # PyTorch's defaults: weights and biases uniform within 1/sqrt(fan_in)
        for layer in (block.switch_fc, block.fc1, block.fc2, block.conv):
            fan_in = layer.weight[0].numel()
            bound = 1 / math.sqrt(fan_in)
            for p in layer.parameters():
                assert p.abs().max() <= bound + 1e-7, layer  # the fill 7 is gone
                assert p.numel() == 1 or p.std() > 0, layer  # drawn, not set
    assert isinstance(blocks[0], AttentionBlock)


def test_registered_placed_after_the_last_norm_and_trainable():
    assert type(build_attention('sem', 64)) is SEM
    assert type(build_attention('mmsase.SEM', 64)) is SEM
    assert SEM.position == AFTER_LAST_NORM and SEM._abbr_ == 'sem'
    with pytest.raises(ValueError, match=r"SEM cannot be placed 'before_conv'"):
        CifarResNet(depth=29, block='bottleneck',
                    attention=dict(type='sem', position='before_conv'))
    block = SEM(32)
    x = torch.randn(2, 32, 4, 4, requires_grad=True)
    block(x).square().sum().backward()
    for name, p in block.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert 'kernel_size=3' in repr(block)
    with pytest.raises(ValueError, match='in_channels must be a positive int'):
        SEM(0)


def test_decision_is_visible_through_named_modules():
    net = CifarResNet(depth=20, attention=dict(type='sem'))  # basic blocks: after bn2
    net.init_weights()
    net.eval()
    names = [n for n, m in net.named_modules() if n.endswith('.sem.decision')]
    assert names[:2] == ['layer1.0.sem.decision', 'layer1.1.sem.decision'] and len(names) == 9
    seen = []
    handles = [dict(net.named_modules())[n].register_forward_hook(
        lambda m, args, out: seen.append(out.shape)) for n in names]
    net(torch.randn(2, 3, 32, 32))
    for handle in handles:
        handle.remove()
    assert seen == [torch.Size([2, 3])] * 9
    assert isinstance(net.layer1[0].sem.decision, nn.Identity)
