"""AutoLA's HOGA block, its nine primitives, its genotypes and its supernet, against references
written here from the authors' code (btma48/AutoLA operations.py, attention_model_test.py,
attention_resnet.py) and against the parameter arithmetic of BASELINES_CODE.md §12."""
import json

import pytest
import torch
import torch.nn.functional as F

import mmsase.models  # noqa: F401
from mmsase.models.algorithms.architecture_params import ArchitectureParams
from mmsase.models.autola import (AUTHORS_GENOTYPE, AUTOLA_SPACE, EDGES, PRIMITIVES, AutoLA,
                                  AutoLASupernet, build_primitive, from_authors_genotype,
                                  to_authors_genotype)
from mmsase.models.autola.genotype import AUTHORS_NORMAL
from mmsase.models.plugins import build_attention

from .helpers import single_thread  # noqa: F401 (autouse fixture)
from .test_param_counts import autola_block

torch.set_default_dtype(torch.float32)


def bn(x, module):
    """Batch norm in train mode with the module's affine parameters (if any)."""
    return F.batch_norm(x, None, None, module.weight, module.bias, training=True,
                        eps=module.eps)


def pool(x):
    return torch.cat([x.max(dim=1, keepdim=True)[0], x.mean(dim=1, keepdim=True)], dim=1)


def sep_stack(x, seq, channels):
    """dw3 → pw → BN → ReLU → dw3 → pw → BN (the authors' SepConv layers, in order)."""
    dw1, pw1, bn1, _, dw2, pw2, bn2 = seq
    y = F.conv2d(x, dw1.weight, padding=1, groups=channels)
    y = F.relu(bn(F.conv2d(y, pw1.weight), bn1))
    y = F.conv2d(y, dw2.weight, padding=1, groups=channels)
    return bn(F.conv2d(y, pw2.weight), bn2)


def mlp(v, seq):
    first, _, second = seq
    out = F.relu(F.linear(v, first.weight, first.bias))
    return F.linear(out, second.weight, second.bias)


def reference_primitive(name, op, x):
    """Each primitive's output, from the formulas (the module supplies its weights only)."""
    c = x.shape[1]
    if name == 'none':
        return torch.zeros_like(x)
    if name == 'skip_connect':
        return x
    if name == 'sep_conv_3x3':
        return x * torch.sigmoid(sep_stack(x, op.op, c))
    if name == 'dil_conv_3x3':
        dw, pw, norm = op.op
        y = F.conv2d(x, dw.weight, padding=2, dilation=2, groups=c)
        return x * torch.sigmoid(bn(F.conv2d(y, pw.weight), norm))
    if name == 'sep_conv_3x3_spatial':
        return x * torch.sigmoid(sep_stack(pool(x), op.op, 2))
    if name == 'dil_conv_3x3_spatial':
        conv, pw, norm = op.op
        y = F.conv2d(pool(x), conv.weight, padding=2, dilation=2)
        return x * torch.sigmoid(bn(F.conv2d(y, pw.weight), norm))
    gap, gmp = x.mean(dim=(2, 3)), x.amax(dim=(2, 3))
    if name == 'SE':
        return x * torch.sigmoid(mlp(gap, op.fc))[:, :, None, None]
    if name == 'SE_A_M':
        return x * torch.sigmoid(mlp(gap, op.fc) + mlp(gmp, op.fc))[:, :, None, None]
    assert name == 'CBAM'
    x = x * torch.sigmoid(mlp(gap, op.mlp) + mlp(gmp, op.mlp))[:, :, None, None]
    conv, norm = op.spatial
    return x * torch.sigmoid(bn(F.conv2d(pool(x), conv.weight, padding=3), norm))


@pytest.mark.parametrize('affine', [True, False])
@pytest.mark.parametrize('name', PRIMITIVES)
def test_primitives_against_the_formulas(name, affine):
    torch.manual_seed(0)
    op = build_primitive(name, 8, affine=affine)
    for p in op.parameters():  # away from the default initialisation
        p.data.normal_(0, 0.5)
    x = torch.randn(3, 8, 6, 5)
    assert torch.allclose(op(x), reference_primitive(name, op, x), atol=1e-5)
    bns = [m for m in op.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    if name != 'CBAM':  # CBAM's spatial BN is always affine, as the authors'
        assert all(m.affine == affine for m in bns)
    assert op(x).shape == x.shape


def test_primitive_names_are_the_authors():
    assert PRIMITIVES == ('none', 'skip_connect', 'sep_conv_3x3', 'dil_conv_3x3',
                          'sep_conv_3x3_spatial', 'dil_conv_3x3_spatial', 'SE', 'SE_A_M',
                          'CBAM')
    with pytest.raises(ValueError, match="unknown AutoLA primitive 'sep_conv_5x5'.*allowed"):
        build_primitive('sep_conv_5x5', 8)


def authors_attention(block, x):
    """The authors' evaluated ``Attention.forward`` (attention_model_test.py) step by step:
    ops in the genotype's list order, inputs by index, ``states[0]`` the node's group."""
    ops = [block.edges[f'n{node}_g' if index == 0 else f'n{node}_n{index}']
           for node, (name, index) in zip([1, 2, 2, 3, 3, 3, 4, 4, 4, 4], AUTHORS_NORMAL)]
    indices = [index for _, index in AUTHORS_NORMAL]
    spx = torch.split(x, x.shape[1] // 4, 1)
    spx_sum = block.group_se(sum(spx))
    states = [spx[0]]
    offset = 0
    for node in range(4):
        states[0] = spx[node]
        states.append(sum(ops[offset + k](states[indices[offset + k]])
                          for k in range(node + 1)))
        offset += node + 1
    back = block.channel_back
    cat = torch.cat(states[-4:] + [spx_sum], dim=1)
    y = F.relu(bn(F.conv2d(cat, back[0].weight), back[1]))
    y = bn(F.conv2d(y, back[3].weight), back[4]) + x
    gate = torch.sigmoid(mlp(y.mean(dim=(2, 3)), block.out_se.fc))
    return y * gate[:, :, None, None]


def test_hoga_forward_matches_the_authors_procedure():
    torch.manual_seed(1)
    block = AutoLA(32)
    for p in block.parameters():
        p.data.normal_(0, 0.3)
    x = torch.randn(4, 32, 7, 7)
    assert torch.allclose(block(x), authors_attention(block, x), atol=1e-5)
    # the group SE really is SE on the summed groups
    s = sum(torch.split(x, 8, 1))
    expected = s * torch.sigmoid(mlp(s.mean(dim=(2, 3)), block.group_se.fc))[:, :, None, None]
    assert torch.allclose(block.group_se(s), expected, atol=1e-6)


@pytest.mark.parametrize('channels', [16, 64, 256, 2048])
def test_parameter_count(channels):
    """Against the layer-by-layer count of test_param_counts (BASELINES_CODE.md §12)."""
    count = sum(p.numel() for p in AutoLA(channels).parameters())
    assert count == autola_block(channels)
    assert sum(p.numel() for p in AutoLA(channels, group_reduction=4, out_reduction=16)
               .parameters()) == autola_block(channels, 4, 16)


def test_cifar_width_has_the_authors_empty_group_se():
    """At C = 16 the group SE has 16 // 4 // 8 = 0 hidden units (authors' ResNet-20): its
    gate is 0.5, silently."""
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        block = AutoLA(16)
    s = torch.randn(2, 4, 5, 5)
    assert torch.equal(block.group_se(s), s * 0.5)


def test_genotypes_authors_form_and_files(tmp_path):
    assert to_authors_genotype(AUTHORS_GENOTYPE) == [
        ('skip_connect', 0), ('sep_conv_3x3_spatial', 0), ('sep_conv_3x3', 1), ('CBAM', 0),
        ('sep_conv_3x3', 1), ('skip_connect', 2), ('sep_conv_3x3', 0), ('skip_connect', 1),
        ('dil_conv_3x3', 2), ('sep_conv_3x3', 3)]
    assert from_authors_genotype(to_authors_genotype(AUTHORS_GENOTYPE)) == AUTHORS_GENOTYPE
    assert EDGES == ('n1_g', 'n2_g', 'n2_n1', 'n3_g', 'n3_n1', 'n3_n2', 'n4_g', 'n4_n1',
                     'n4_n2', 'n4_n3')
    path = tmp_path / 'g.json'
    AUTOLA_SPACE.save(AUTHORS_GENOTYPE, path, dict(_epoch=3))
    assert json.loads(path.read_text())['_epoch'] == 3
    assert AutoLA(16, genotype=str(path)).genotype == dict(AUTHORS_GENOTYPE)


@pytest.mark.parametrize('genotype, message', [
    ({**AUTHORS_GENOTYPE, 'n1_g': 'none'}, "unknown operation 'none' for edge 'n1_g'"),
    ({**AUTHORS_GENOTYPE, 'n5_g': 'SE'}, r"unknown edge\(s\) 'n5_g'"),
    ({k: v for k, v in AUTHORS_GENOTYPE.items() if k != 'n4_n3'}, "missing edge.*'n4_n3'"),
])
def test_bad_genotypes_are_named(genotype, message):
    with pytest.raises(ValueError, match=message):
        AutoLA(16, genotype=genotype)


def test_bad_authors_lists_and_channels():
    with pytest.raises(ValueError, match='10 .*entries'):
        from_authors_genotype(AUTHORS_NORMAL[:9])
    twice = list(AUTHORS_NORMAL)
    twice[2] = ('sep_conv_3x3', 0)  # node 2 takes its group twice
    with pytest.raises(ValueError, match='node 2 .*each of its inputs 0..1 once'):
        from_authors_genotype(twice)
    with pytest.raises(ValueError, match='in_channels=18 must be divisible by 4'):
        AutoLA(18)
    with pytest.raises(ValueError, match=r'expects \(B, 16, H, W\), got \(2, 8, 4, 4\)'):
        AutoLA(16)(torch.randn(2, 8, 4, 4))


def test_factory_and_registry():
    from mmengine.registry import MODELS
    block = build_attention('autola', 256)
    assert isinstance(block, AutoLA) and block.genotype == dict(AUTHORS_GENOTYPE)
    assert MODELS.get('AutoLA') is AutoLA and MODELS.get('AutoLASupernet') is AutoLASupernet
    assert build_attention('autola', 64, group_reduction=4).group_se.fc[0].out_features == 4


def test_supernet_is_the_weighted_sum_of_its_primitives():
    torch.manual_seed(2)
    block = AutoLASupernet(16)
    with torch.no_grad():
        block.arch.alpha.normal_(0, 1)
    x = torch.randn(2, 16, 6, 6)
    weights = block.arch.probabilities()

    def mixed(name, v):
        row = weights[EDGES.index(name)]
        return sum(w * reference_primitive(op_name, op, v)
                   for w, (op_name, op) in zip(row, block.edges[name].ops.items()))

    assert torch.allclose(block(x), block.dag(x, mixed), atol=1e-5)
    # the search model's settings: primitives' BNs not affine, SE reductions 4 and 16
    assert not any(m.affine for name, m in block.edges.named_modules()
                   if isinstance(m, torch.nn.BatchNorm2d) and 'CBAM' not in name)
    assert block.group_se.fc[0].out_features == 4 // 4
    assert block.out_se.fc[0].out_features == 16 // 16


def test_derive_passes_over_none():
    arch = ArchitectureParams(space=AUTOLA_SPACE)
    assert arch.alpha.shape == (10, 9)
    with torch.no_grad():
        arch.alpha.zero_()
        arch.alpha[:, PRIMITIVES.index('none')] = 5.0
        arch.alpha[:, PRIMITIVES.index('CBAM')] = 1.0
    assert arch.derive() == {edge: 'CBAM' for edge in EDGES}
    arch.set_genotype(AUTHORS_GENOTYPE)
    assert arch.derive() == dict(AUTHORS_GENOTYPE)
    block = AutoLASupernet(16, arch=arch)
    assert block.is_bound and block.derive() == dict(AUTHORS_GENOTYPE)
    assert not list(block.parameters()) or all(p is not arch.alpha for p in block.parameters())


def test_a_block_rejects_an_architecture_of_another_space():
    with pytest.raises(ValueError, match='searches the AutoLA space.*SASE space'):
        AutoLASupernet(16, arch=ArchitectureParams())


def test_the_authors_cifar_search_network():
    """CifarResNet(depth=34, stage_blocks=(3, 4, 6, 3), shortcut='conv'): the authors'
    CifarAttentionResNet34 (16/32/64/128 channels, strides 1, 2, 2, 2, 1×1-conv shortcuts),
    with a supernet block after bn2 of each of its 16 basic blocks."""
    from mmsase.registry import MODELS
    net = MODELS.build(dict(type='mmsase.CifarResNet', depth=34, stage_blocks=(3, 4, 6, 3),
                            shortcut='conv', out_indices=(0, 1, 2, 3),
                            attention=dict(type='mmsase.AutoLASupernet')))
    outs = net(torch.randn(2, 3, 32, 32))
    assert [tuple(o.shape[1:]) for o in outs] == [(16, 32, 32), (32, 16, 16), (64, 8, 8),
                                                  (128, 4, 4)]
    blocks = [m for m in net.modules() if isinstance(m, AutoLASupernet)]
    assert [b.in_channels for b in blocks] == [16] * 3 + [32] * 4 + [64] * 6 + [128] * 3
    with pytest.raises(ValueError, match=r'depth=20 does not match stage_blocks=\(3, 4, 6, 3\)'):
        MODELS.build(dict(type='mmsase.CifarResNet', depth=20, stage_blocks=(3, 4, 6, 3)))
    with pytest.raises(ValueError, match='out_indices must be within'):
        MODELS.build(dict(type='mmsase.CifarResNet', depth=20, out_indices=(3, )))
