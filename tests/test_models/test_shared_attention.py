"""EAN's shared attention in the backbones: one module per stage owned by the backbone, applied
after the last BN by the blocks a connection code plugs; its gradient is the sum over them."""
import copy

import pytest
import torch

from mmsase.models.backbones import AttentionResNet, CifarResNet
from mmsase.models.ean import ConnectionCode

FC_1000 = 2048 * 1000 + 1000  # ImageNet classifier on ResNet-50's 2048 channels
R50, SE_R50 = 25_557_032, 28_088_024  # BASELINES.md
AUTHORS_SGE = '1001011010011011'


def count(module) -> int:
    return sum(p.numel() for p in module.parameters())


def cifar(code=None, shared=True, block='basic', depth=14, **kwargs):
    torch.manual_seed(0)
    attention = kwargs.pop('attention', dict(type='mmsase.SE', reduction=4))
    net = CifarResNet(depth=depth, block=block, attention=attention, attention_shared=shared,
                      connection_code=code, **kwargs)
    net.init_weights()
    return net.double()


def test_one_module_per_stage_owned_by_the_backbone():
    net = cifar('10-01-11')
    assert len(net.shared_attention) == 3
    for stage, name in enumerate(net.res_layers):
        for block in getattr(net, name):
            assert block.__dict__['_shared_attention'] is net.shared_attention[stage]
            assert 'se' not in dict(block.named_children())
    keys = set(net.state_dict())
    assert {k for k in keys if 'fc1' in k or 'fc2' in k} == {
        f'shared_attention.{s}.fc{i}.{p}' for s in range(3) for i in (1, 2)
        for p in ('weight', 'bias')}
    assert net.connection_code == ConnectionCode.parse('10-01-11')
    assert [b.attention_plugged for n in net.res_layers for b in getattr(net, n)] == \
        [True, False, False, True, True, True]


@pytest.mark.parametrize('block,depth', [('basic', 14), ('bottleneck', 20)])
def test_gradient_is_the_sum_over_the_blocks_that_use_it(block, depth):
    code = '10-11-01'
    shared = cifar(code, block=block, depth=depth)
    # hand-made: the same network where every plugged block has its own copy of the module
    separate = copy.deepcopy(shared)
    copies = {s: [] for s in range(3)}
    for stage, name in enumerate(separate.res_layers):
        for bit, res_block in zip(ConnectionCode.parse(code).bits[stage], getattr(separate, name)):
            if bit:
                own = copy.deepcopy(separate.shared_attention[stage])
                res_block.share_attention(own)
                copies[stage].append(own)
    x = torch.randn(2, 3, 16, 16, dtype=torch.float64)
    out_shared, out_separate = shared(x)[0], separate(x)[0]
    torch.testing.assert_close(out_shared, out_separate)
    out_shared.square().sum().backward()
    out_separate.square().sum().backward()
    for stage, module in enumerate(shared.shared_attention):
        assert len(copies[stage]) == (1, 2, 1)[stage]
        for name, param in module.named_parameters():
            summed = sum(dict(c.named_parameters())[name].grad for c in copies[stage])
            torch.testing.assert_close(param.grad, summed)
            assert param.grad.abs().sum() > 0


def test_set_connection_code_plugs_only_the_selected_blocks():
    net = cifar()
    assert net.connection_code == ConnectionCode.all_plugged((2, 2, 2))
    calls = [0, 0, 0]
    for stage, module in enumerate(net.shared_attention):
        module.register_forward_hook(lambda *_, s=stage: calls.__setitem__(s, calls[s] + 1))
    x = torch.randn(1, 3, 16, 16, dtype=torch.float64)
    net(x)
    assert calls == [2, 2, 2]
    assert net.set_connection_code((2, 0, 3)) == ConnectionCode.parse('10-00-11')
    calls[:] = [0, 0, 0]
    net(x)
    assert calls == [1, 0, 2]
    # no block plugged: the plain network with the same weights
    net.set_connection_code((0, 0, 0))
    plain = CifarResNet(depth=14).double()
    missing = plain.load_state_dict(net.state_dict(), strict=False)
    assert not missing.missing_keys and all('shared_attention' in k
                                            for k in missing.unexpected_keys)
    net.eval(), plain.eval()
    torch.testing.assert_close(net(x)[0], plain(x)[0])
    with pytest.raises(ValueError, match=r'5 bits; expected 6 bits, one per residual block'):
        net.set_connection_code('10110')


def test_deepcopy_keeps_one_module_per_stage():
    twin = copy.deepcopy(cifar('10-01-11'))
    assert twin.layer2[1].__dict__['_shared_attention'] is twin.shared_attention[1]


def test_without_sharing_a_code_gives_only_plugged_blocks_a_module():
    net = cifar('10-01-11', shared=False)
    assert not hasattr(net, 'shared_attention')
    with_module = [f'{n}.{i}' for n in net.res_layers for i, b in enumerate(getattr(net, n))
                   if hasattr(b, 'se')]
    assert with_module == ['layer1.0', 'layer2.1', 'layer3.0', 'layer3.1']
    net.set_connection_code('10-00-10')  # unplugging is allowed
    assert not net.layer2[1].attention_plugged and net.layer1[0].attention_plugged
    with pytest.raises(ValueError, match=r'plugs layer1\.1, which carries no attention block'):
        net.set_connection_code('11-01-11')


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match=r"only blocks placed after the last norm .* GCT is "
                                         r"placed 'before_conv'"):
        cifar(attention=dict(type='mmsase.GCT'))
    with pytest.raises(ValueError, match='give connection_code, not attention_blocks'):
        cifar(attention_blocks=('11', '11', '11'))
    with pytest.raises(ValueError, match='not attention_stages'):
        cifar(attention_stages=(1, 1, 0))
    with pytest.raises(ValueError, match='connection_code: .* not attention_stages'):
        cifar('11-11-11', shared=False, attention_stages=(1, 1, 0))
    with pytest.raises(ValueError, match='needs an attention block'):
        CifarResNet(depth=14, attention_shared=True)
    with pytest.raises(ValueError, match=r'stage 2 .* is 4: its 2 blocks take 0\.\.3'):
        cifar((1, 4, 0))


def test_frozen_stages_freeze_their_shared_modules():
    net = AttentionResNet(50, attention=dict(type='mmsase.SGE'), attention_shared=True,
                          frozen_stages=2, base_channels=16, stem_channels=16)
    frozen = [all(not p.requires_grad for p in m.parameters()) for m in net.shared_attention]
    assert frozen == [True, True, False, False]


def test_resnet50_parameter_counts():
    """One module per stage whatever the code; non-shared, one per plugged block."""
    se = dict(type='mmsase.SE')
    shared_se = AttentionResNet(50, attention=se, attention_shared=True,
                                connection_code=AUTHORS_SGE)
    assert count(shared_se) + FC_1000 == R50 + 700_400 == 26_257_432  # the authors' figure
    assert len(shared_se.shared_attention) == 4
    assert 'shared_attention.2.fc1.weight' in shared_se.state_dict()
    shared_se.set_connection_code((7, 15, 63, 7))
    assert count(shared_se) + FC_1000 == 26_257_432  # the code changes no parameter
    shared_sge = AttentionResNet(50, attention=dict(type='mmsase.SGE', groups=64),
                                 attention_shared=True, connection_code=(4, 11, 19, 3))
    assert count(shared_sge) + FC_1000 == R50 + 4 * 128 == 25_557_544
    assert {k for k in shared_sge.state_dict() if 'shared' in k} == {
        f'shared_attention.{s}.{p}' for s in range(4) for p in ('weight', 'bias')}
    sparse_se = AttentionResNet(50, attention=se, connection_code=AUTHORS_SGE)
    channels = (256, 512, 1024, 2048)
    plugged = ConnectionCode.parse(AUTHORS_SGE, (3, 4, 6, 3)).bits
    per_block = [2 * c * c // 16 + c // 16 + c for c in channels]  # fc1 + fc2 with biases
    expected = R50 + sum(sum(bits) * n for bits, n in zip(plugged, per_block))
    assert count(sparse_se) + FC_1000 == expected == 27_114_840
    all_se = R50 + sum(n * blocks for n, blocks in zip(per_block, (3, 4, 6, 3)))
    assert all_se == SE_R50  # the formula gives SE-ResNet-50 for every block plugged
