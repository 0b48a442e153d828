"""DIA, EAN's stateful shared module (one LSTM cell per stage), against a reference written here
from the formulas of BASELINES_CODE.md §11: the backbone with an explicit LSTM-cell loop over
the blocks of each stage. The state starts at zero in every forward, skips unplugged blocks,
and the shared cell's gradient is the sum of what per-block copies of it receive.

Float64 and small widths (ResNet-50's layout at 1/8 width, CIFAR ResNet-29 bottlenecks) on
32 px inputs, BNs in training mode so that activations stay of order one.
"""
import copy

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from mmsase.models.backbones import AttentionResNet, CifarResNet
from mmsase.models.plugins import DIA, SE, build_attention, is_stateful
from .helpers import randomize_, single_thread  # noqa: F401 (autouse fixture)

R50 = 25_557_032  # torchvision's / mmpretrain's ResNet-50 with its 1000-class FC
FC_1000 = 2048 * 1000 + 1000
AUTHORS_DIA = '1100011110010011'  # (6, 3, 50, 3), run_codes_train_from_scratch.py


# ---------------------------------------------------------------------------------------------
# The reference: DIA's formulas and the residual network, written out
# ---------------------------------------------------------------------------------------------
def mlp(v, w1, b1, w2, b2):
    """C -> h -> 4C, ReLU between: the gate MLPs."""
    return torch.clamp(v @ w1.T + b1, min=0) @ w2.T + b2


def lstm_step(x, h, c, ih, hh):
    """One DIA step on a block's BN output ``x`` (B, C, H, W) from the state ``(h, c)``:
    ``s = GAP(x)``, ``(i, f, g, o) = MLP_ih(s) + MLP_hh(h)``, ``c' = σ(f)c + σ(i)tanh(g)``,
    ``h' = σ(o)σ(c')``; returns ``(x ⊙ h', h', c')``."""
    C = x.shape[1]
    s = x.sum((2, 3)) / (x.shape[2] * x.shape[3])
    z = mlp(s, *ih) + mlp(h, *hh)
    i, f, g, o = z[:, :C], z[:, C:2 * C], z[:, 2 * C:3 * C], z[:, 3 * C:]
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    h = torch.sigmoid(o) * torch.sigmoid(c)
    return x * h[:, :, None, None], h, c


def cell_tensors(module):
    """``(ih, hh)``: ``(W1, b1, W2, b2)`` of each gate MLP of a DIA module."""
    p = dict(module.named_parameters())
    return tuple(tuple(p[f'{mlp}.{i}.{kind}'] for i in (0, 2) for kind in ('weight', 'bias'))
                 for mlp in ('w_ih', 'w_hh'))


def branch_and_identity(block, x):
    """A bottleneck's ``bn3(conv3(relu(bn2(conv2(relu(bn1(conv1(x))))))))`` and its shortcut."""
    out = F.relu(block.bn1(block.conv1(x)))
    out = F.relu(block.bn2(block.conv2(out)))
    out = block.bn3(block.conv3(out))
    return out, (x if block.downsample is None else block.downsample(x))


def reference(net, x, bits, cells, per_block_state=False):
    """The backbone's last output with DIA written out. ``cells[stage][i]`` = ``(ih, hh)`` of
    block ``i`` (the same tensors for every block of a stage when shared). Per stage, ``h = c =
    0``, then block by block in order: a plugged block (``bits[stage][i]``) takes one LSTM
    step and rescales its BN output, an unplugged one leaves the state as it is.
    ``per_block_state``: every block starts from zero (a cell of its own, not shared)."""
    x = F.relu(net.bn1(net.conv1(x)))
    if isinstance(net, AttentionResNet):
        x = net.maxpool(x)
    for stage, name in enumerate(net.res_layers):
        h = c = None
        for i, block in enumerate(getattr(net, name)):
            out, identity = branch_and_identity(block, x)
            if bits[stage][i]:
                if h is None or per_block_state:
                    h = c = torch.zeros(out.shape[:2], dtype=out.dtype)
                out, h, c = lstm_step(out, h, c, *cells[stage][i])
            x = F.relu(out + identity)
    return x


def shared_cells(net, bits):
    return [[cell_tensors(net.shared_attention[s])] * len(b) for s, b in enumerate(bits)]


def r50(code=AUTHORS_DIA, **kwargs):
    """ResNet-50's layout at 1/8 width: stage outputs 32/64/128/256 (DIA hidden 1/3/6/12)."""
    torch.manual_seed(0)
    net = AttentionResNet(50, attention=dict(type='mmsase.DIA'), attention_shared=True,
                          connection_code=code, stem_channels=8, base_channels=8, **kwargs)
    return ready(net)


def cifar29(code='011-101-100', shared=True):
    """CIFAR ResNet-29: 3 bottlenecks per stage, outputs 64/128/256 (DIA hidden 3/6/12)."""
    torch.manual_seed(0)
    net = CifarResNet(depth=29, block='bottleneck', attention=dict(type='dia'),
                      attention_shared=shared, connection_code=code)
    return ready(net)


def ready(net):
    """Random weights and BN statistics, DIA back at its (random) default initialisation so
    that its gates are not saturated, float64, training mode."""
    randomize_(net)
    for module in net.modules():
        if isinstance(module, DIA):
            module.init_weights()
    net.double().train()
    return net


def image(batch=4, seed=1):
    return torch.randn(batch, 3, 32, 32, generator=torch.Generator().manual_seed(seed),
                       dtype=torch.float64)


def close(a, b):
    assert b.abs().max() > 1e-3  # not a vacuous comparison
    torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# The module alone
# ---------------------------------------------------------------------------------------------
def test_the_module_steps_an_lstm_cell_over_its_calls():
    dia = DIA(64).double()
    assert is_stateful(dia) and not is_stateful(SE(64)) and is_stateful(DIA)
    g = torch.Generator().manual_seed(0)
    xs = [torch.randn(2, 64, 5, 6, generator=g, dtype=torch.float64) + 0.3 for _ in range(3)]
    ih, hh = cell_tensors(dia)
    h = c = torch.zeros(2, 64, dtype=torch.float64)
    for x in xs:
        expected, h, c = lstm_step(x, h, c, ih, hh)
        close(dia(x), expected)
        torch.testing.assert_close(dia.state, (h, c), rtol=1e-12, atol=1e-12)
    dia.reset_state()
    assert dia.state is None
    first, _, _ = lstm_step(xs[0], torch.zeros_like(h), torch.zeros_like(c), ih, hh)
    close(dia(xs[0]), first)  # from zero again
    with pytest.raises(ValueError, match=r'state holds a batch of 2, .* one of 1; call '
                                         r'reset_state\(\) before a new sequence'):
        dia(xs[1][:1])


def test_build_attention_dia_and_its_parameter_count():
    dia = build_attention('dia', 256)
    assert type(dia) is DIA and dia.hidden_channels == 256 // 20 == 12
    assert type(build_attention('mmsase.DIA', 256)) is DIA
    assert (DIA._abbr_, DIA.position) == ('dia', 'after_last_norm')
    C, h = 256, 12
    per_mlp = C * h + h + h * 4 * C + 4 * C  # Linear(C, h) and Linear(h, 4C), biased
    assert sum(p.numel() for p in dia.parameters()) == 2 * per_mlp == 32_792
    assert dia(torch.randn(2, 256, 4, 4)).shape == (2, 256, 4, 4)
    assert 'w_ih.0.weight' in dia.state_dict() and len(dia.state_dict()) == 8  # no state


@pytest.mark.parametrize('make, message', [
    (lambda: build_attention('dia', 16), r'DIA: in_channels=16 // reduction=20 = 0 hidden '
                                         r'units; the gate MLPs need in_channels >= reduction'),
    (lambda: DIA(0), 'in_channels must be a positive int, got 0'),
    (lambda: DIA(64, reduction=0), 'reduction must be a positive int, got 0'),
    (lambda: DIA(64)(torch.randn(1, 32, 4, 4)), r'DIA\(in_channels=64\) expects \(B, 64, H, '
                                                r'W\), got \(1, 32, 4, 4\)'),
    (lambda: CifarResNet(depth=8, attention=dict(type='dia'), attention_shared=True),
     'in_channels=16 // reduction=20'),  # basic CIFAR blocks are 16 channels wide
    (lambda: r50(with_cp=True), r'DIA carries a state .* with_cp=False'),
    (lambda: AttentionResNet(50, attention=dict(type='dia'), with_cp=True, base_channels=8,
                             stem_channels=8), r'DIA carries a state .* with_cp=False'),
])
def test_bad_values_are_named(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_a_copy_taken_after_a_training_forward_has_no_state():
    net = cifar29()
    net(image())  # the state now hangs on an autograd graph, which deepcopy refuses
    twin = copy.deepcopy(net)
    assert all(m.state is None for m in twin.shared_attention)
    close(twin(image())[0], net(image())[0])


# ---------------------------------------------------------------------------------------------
# In the backbones: values, state reset, gradients
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize('make', [r50, cifar29], ids=['resnet50', 'cifar_resnet29'])
def test_backbone_matches_the_lstm_loop_over_the_blocks(make):
    net = make()
    bits = net.connection_code.bits
    x = image()
    out = net(x)[-1]
    close(out, reference(net, x, bits, shared_cells(net, bits)))
    # the same input again: the state was reset, so the same output, bit for bit
    assert torch.equal(net(x)[-1], out)
    # another batch size, and another code: a new sequence each time
    close(net(x[:2])[-1], reference(net, x[:2], bits, shared_cells(net, bits)))
    other = net.set_connection_code('1' * sum(net.stage_blocks)).bits  # every block plugged
    close(net(x)[-1], reference(net, x, other, shared_cells(net, other)))


def test_the_state_skips_unplugged_blocks():
    """'011-101-100': each stage's first plugged block starts from zero, and layer2.1 leaves
    the state of layer2.0 to layer2.2; a state that went through the unplugged blocks (or
    restarted at each block) would give another output."""
    net = cifar29('011-101-100')
    bits = net.connection_code.bits
    x = image()
    out = net(x)[0]
    cells = shared_cells(net, bits)
    close(out, reference(net, x, bits, cells))
    restarted = reference(net, x, bits, cells, per_block_state=True)
    assert (restarted - out).abs().max() > 1e-3


def test_shared_gradient_is_the_sum_over_the_plugged_blocks():
    net = r50()
    bits = net.connection_code.bits
    x = image()
    weights = torch.randn(net(x)[-1].shape, generator=torch.Generator().manual_seed(2),
                          dtype=torch.float64)
    (net(x)[-1] * weights).sum().backward()
    # the unshared reference: every plugged block gets its own leaf copy of the stage's cell
    copies = [[tuple(tuple(t.detach().clone().requires_grad_() for t in mlp_)
                     for mlp_ in cell_tensors(net.shared_attention[s])) for _ in b]
              for s, b in enumerate(bits)]
    (reference(net, x, bits, copies) * weights).sum().backward()
    for stage, module in enumerate(net.shared_attention):
        plugged = [copies[stage][i] for i, bit in enumerate(bits[stage]) if bit]
        assert len(plugged) == (2, 2, 3, 2)[stage]
        for k, param in enumerate(t for mlp_ in cell_tensors(module) for t in mlp_):
            summed = sum(cell[k // 4][k % 4].grad for cell in plugged)
            assert summed.abs().sum() > 0, (stage, k)
            torch.testing.assert_close(param.grad, summed, rtol=1e-9, atol=1e-12)


def test_without_sharing_every_block_takes_one_step_from_zero():
    net = cifar29('111-111-111', shared=False)
    assert not hasattr(net, 'shared_attention')
    cells = [[cell_tensors(block.dia) for block in getattr(net, name)]
             for name in net.res_layers]
    bits = net.connection_code.bits
    x = image()
    out = net(x)[0]
    close(out, reference(net, x, bits, cells, per_block_state=True))
    assert torch.equal(net(x)[0], out)


def test_frozen_stages_freeze_their_cells_and_keep_the_values():
    net = r50(frozen_stages=2)
    net.train()  # mmpretrain's train() puts the frozen stages back in eval mode
    assert [m.training for m in net.shared_attention] == [False, False, True, True]
    bits = net.connection_code.bits
    x = image()
    out = net(x)[-1]
    close(out, reference(net, x, bits, shared_cells(net, bits)))
    out.square().mean().backward()
    for stage, module in enumerate(net.shared_attention):
        grads = [p.grad for p in module.parameters()]
        if stage < 2:
            assert all(not p.requires_grad for p in module.parameters())
            assert all(g is None for g in grads)
        else:
            assert all(g is not None and g.abs().sum() > 0 for g in grads), stage


def test_resnet50_with_shared_dia_has_the_authors_count():
    """Per stage, C channels and h = ⌊C/20⌋: two MLPs Linear(C, h) + Linear(h, 4C), biased.
    The authors' FBResNet-50 has 26,560 more (a bias on every conv), which ours does not."""
    net = AttentionResNet(50, attention=dict(type='mmsase.DIA'), attention_shared=True,
                          connection_code=AUTHORS_DIA)
    per_stage = [2 * (C * (C // 20) + C // 20 + (C // 20) * 4 * C + 4 * C)
                 for C in (256, 512, 1024, 2048)]
    assert per_stage == [32_792, 132_146, 530_534, 2_105_548]
    assert sum(per_stage) == 2_801_020  # BASELINES_CODE.md §11
    count = sum(p.numel() for p in net.parameters()) + FC_1000
    assert count == R50 + sum(per_stage) == 28_358_052
    net.set_connection_code((7, 15, 63, 7))  # the code changes no parameter
    assert sum(p.numel() for p in net.parameters()) + FC_1000 == 28_358_052


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device')
def test_cuda_tensors():
    net = r50().float()
    x = image().float()
    cpu = net(x)[-1]
    net.cuda()
    out = net(x.cuda())[-1]
    torch.testing.assert_close(out.cpu(), cpu, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(net(x.cuda())[-1], out, rtol=1e-6, atol=1e-7)  # reset
    out.square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() and p.grad.is_cuda
               for p in net.shared_attention.parameters())
    with torch.autocast('cuda', dtype=torch.float16):
        assert torch.isfinite(net(x.cuda())[-1]).all()
