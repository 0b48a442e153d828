"""The fixed SASE block (spec §1, §3), its optimised path, and the SE baseline."""
import pytest
import torch
import torch.nn.functional as F

from mmsase.models.sase import PAPER_GENOTYPE, SASE, random_genotype, save_genotype
from mmsase.models.search_space import EDGES

from .helpers import bn_eval, randomize_, single_thread  # noqa: F401 (autouse fixture)

C = 16


def paper_block(seed=0, channels=C):
    return randomize_(SASE(channels), seed).double()


def hand_forward(block, x):
    """Spec §1 for the paper genotype, written out with the block's weights."""
    e = block.edges
    # cs = gap_gmp: [mean; max] over H·W as a 2-channel length-C signal, conv 2→1, BN, ReLU
    f = e.cs.fusion
    w = f.conv.weight.flatten()
    z = torch.relu(bn_eval(w[0] * x.mean((2, 3)) + w[1] * x.amax((2, 3)) + f.conv.bias, f.bn))
    # ce1 = fc (no bias), ce2 = affine; both read z
    m1 = torch.sigmoid(torch.relu(z @ e.ce1.fc1.weight.T) @ e.ce1.fc2.weight.T)[..., None, None]
    m2 = torch.sigmoid(e.ce2.weight * z[..., None, None] + e.ce2.bias)
    x2 = x * m2
    u1 = x.mean(1, keepdim=True)  # ss1 = gap over C
    u2 = (x2.pow(4).mean(1, keepdim=True) + 1e-6)**0.25  # ss2 = l4 over C of x'
    wf = block.fuse.conv.weight.flatten()
    h = torch.relu(bn_eval(wf[0] * u1 + wf[1] * u2 + block.fuse.conv.bias, block.fuse.bn))
    c1, c2 = e.se.convs  # se = conv_3x3x2
    ms = torch.sigmoid(F.conv2d(torch.relu(F.conv2d(h, c1.weight, c1.bias, padding=1)),
                                c2.weight, c2.bias, padding=1))
    return x * (m1 + ms) / 2


def test_default_genotype_is_the_papers():
    block = SASE(C)
    assert block.genotype == dict(PAPER_GENOTYPE)
    assert [type(block.edges[e]).__name__ for e in EDGES] == [
        'ChannelGAPGMP', 'ChannelFC', 'ChannelAffine', 'SpatialGAP', 'SpatialL4',
        'SpatialConv3x3x2']
    assert SASE._abbr_ == 'sase'


@pytest.mark.parametrize('shape', [(2, C, 5, 6), (1, C, 7, 7), (3, C, 13, 17), (2, C, 1, 1)])
@pytest.mark.parametrize('training', [True, False])
def test_output_shape_equals_input(shape, training):
    block = SASE(C).train(training)
    y = block(torch.randn(shape))
    assert y.shape == shape and torch.isfinite(y).all()


@pytest.mark.parametrize('fast', [False, True])
def test_paper_block_equals_hand_written_spec_formula(fast):
    block = paper_block().eval()
    x = torch.randn(2, C, 5, 6, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(block(x, fast=fast), hand_forward(block, x), rtol=1e-10,
                                   atol=1e-12)


def test_training_mode_uses_batch_statistics():
    block = paper_block().train()
    x = torch.randn(4, C, 5, 6, dtype=torch.float64)
    y_train = block(x)
    assert not torch.allclose(y_train, hand_forward(block, x))  # hand_forward is eval-mode BN
    assert block.fuse.bn.num_batches_tracked == 1


def test_the_fast_flag_selects_the_path(monkeypatch):
    calls = []
    original = SASE.dag

    def spy(self, x, edge, fast=False):
        calls.append(fast)
        return original(self, x, edge, fast)

    monkeypatch.setattr(SASE, 'dag', spy)
    x = torch.randn(1, C, 4, 4)
    block = SASE(C)
    block.train()(x)
    block.eval()(x)
    block(x, fast=False)
    SASE(C, fast=False)(x)
    assert calls == [True, True, False, False]


@pytest.mark.parametrize('seed', range(6))
@pytest.mark.parametrize('dtype,tol', [(torch.float64, 1e-10), (torch.float32, 1e-5)])
def test_fast_path_matches_reference_for_any_genotype(seed, dtype, tol):
    genotype = PAPER_GENOTYPE if seed == 0 else random_genotype(seed)
    block = randomize_(SASE(C, genotype), seed).to(dtype).eval()
    x = torch.randn(2, C, 7, 9, dtype=dtype, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        torch.testing.assert_close(block(x, fast=True), block(x, fast=False), rtol=tol,
                                   atol=tol)


@pytest.mark.parametrize('fast', [False, True])
def test_channels_last_and_non_contiguous_inputs(fast):
    block = randomize_(SASE(C, random_genotype(2)), 0).double().eval()
    x = torch.randn(2, C, 6, 7, dtype=torch.float64)
    with torch.no_grad():
        expected = block(x, fast=False)
        for variant in (x.to(memory_format=torch.channels_last),
                        x.transpose(2, 3).contiguous().transpose(2, 3)):
            torch.testing.assert_close(block(variant, fast=fast), expected, rtol=1e-10,
                                       atol=1e-12)


@pytest.mark.parametrize('seed', range(3))
def test_fast_path_gradients_match_reference(seed):
    genotype = PAPER_GENOTYPE if seed == 0 else random_genotype(seed + 10)
    block = randomize_(SASE(C, genotype), seed).double().eval()
    x = torch.randn(2, C, 5, 6, dtype=torch.float64, requires_grad=True)
    grads = []
    for fast in (False, True):
        block.zero_grad()
        x.grad = None
        block(x, fast=fast).square().sum().backward()
        grads.append([x.grad.clone()] + [p.grad.clone() for p in block.parameters()])
    for g_ref, g_fast in zip(*grads):
        torch.testing.assert_close(g_fast, g_ref, rtol=1e-9, atol=1e-12)


def test_block_gradcheck():
    block = paper_block(channels=8).train()
    x = torch.randn(2, 8, 4, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(block, (x, ), fast_mode=True)


def test_bfloat16_autocast_with_large_activations():
    block = SASE(C).eval()
    x = torch.randn(2, C, 7, 7) * 1e3
    for fast in (False, True):
        with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16):
            y = block(x, fast=fast)
        assert torch.isfinite(y).all()


def test_genotype_from_file_and_mapping(tmp_path):
    genotype = random_genotype(5)
    path = tmp_path / 'g.json'
    save_genotype(genotype, path)
    for source in (genotype, path, str(path)):
        block = SASE(C, source)
        assert block.genotype == genotype
        assert type(block.edges['cs']) is type(SASE(C, genotype).edges['cs'])


@pytest.mark.parametrize('genotype,named', [
    ({**PAPER_GENOTYPE, 'cs': 'gmp'}, ["'gmp'", 'gap, gsop, std_l2, l4, gap_gmp, gap_std']),
    ({**PAPER_GENOTYPE, 'cs2': 'gap'}, ["'cs2'", 'cs, ce1, ce2, ss1, ss2, se']),
    ({k: v for k, v in PAPER_GENOTYPE.items() if k != 'se'}, ["'se'", 'cs, ce1, ce2']),
])
def test_bad_genotypes_name_the_bad_entry(genotype, named):
    with pytest.raises(ValueError) as info:
        SASE(C, genotype)
    assert all(s in str(info.value) for s in named), str(info.value)


def test_bad_genotype_file(tmp_path):
    path = tmp_path / 'broken.json'
    path.write_text('{"cs": ')
    with pytest.raises(ValueError, match='broken.json.*not valid JSON'):
        SASE(C, path)
    with pytest.raises(FileNotFoundError, match='missing.json'):
        SASE(C, tmp_path / 'missing.json')


@pytest.mark.parametrize('bad', [0, -4, 16.0, True, None, '16'])
def test_in_channels_is_validated(bad):
    with pytest.raises(ValueError, match=f'in_channels must be a positive int, got {bad!r}'):
        SASE(bad)


def test_wrong_input_shape_is_reported():
    with pytest.raises(ValueError, match=r'expects \(B, 16, H, W\), got \(2, 8, 4, 4\)'):
        SASE(C)(torch.randn(2, 8, 4, 4))


def block_params(channels):
    return sum(p.numel() for p in SASE(channels).parameters())


def test_paper_block_parameter_count_formula():
    """C²/8 (fc, no bias) + 2C (affine) + K, K = 5 (cs fusion) + 5 (fuse) + 20 (conv_3x3x2)."""
    for channels in (16, 64, 256):
        assert block_params(channels) == channels**2 // 8 + 2 * channels + 30


def test_resnet50_parameter_total_matches_the_paper():
    stages = [(256, 3), (512, 4), (1024, 6), (2048, 3)]
    total = sum(n * block_params(c) for c, n in stages)
    assert total == 2_514_944 + 30_208 + 16 * 30 == 2_545_632
    resnet50 = 25_557_032
    print(f'ResNet-50 + SASE: {resnet50 + total:,} parameters '
          f'= {(resnet50 + total) / 1e6:.2f} M')
    assert round((resnet50 + total) / 1e6, 2) == 28.10


# ---------------------------------------------------------------------------------------------
# SE baseline and registration
# ---------------------------------------------------------------------------------------------
def test_se_parameter_count_and_forward():
    from mmsase.models.plugins import SE
    for channels in (64, 256, 2048):
        se = SE(channels)
        assert sum(p.numel() for p in se.parameters()) == (
            2 * channels**2 // 16 + channels // 16 + channels)
    se = randomize_(SE(C), 0).double()
    x = torch.randn(2, C, 5, 6, dtype=torch.float64)
    w1, b1 = se.fc1.weight.view(1, C), se.fc1.bias
    w2, b2 = se.fc2.weight.view(C, 1), se.fc2.bias
    expected = x * torch.sigmoid(torch.relu(x.mean((2, 3)) @ w1.T + b1) @ w2.T + b2)[..., None,
                                                                                     None]
    torch.testing.assert_close(se(x), expected)
    assert SE._abbr_ == 'se' and SE(8).fc1.out_channels == 1
    with pytest.raises(ValueError, match='in_channels must be a positive int, got 0'):
        SE(0)


def test_blocks_are_registered_in_the_root_registry():
    from mmengine.registry import MODELS

    import mmsase.models.plugins as plugins
    for name in ('SASE', 'SASESupernet', 'SE'):
        assert MODELS.get(name) is getattr(plugins, name)
    block = MODELS.build(dict(type='SASE', in_channels=8, genotype=random_genotype(1)))
    assert isinstance(block, SASE) and block.genotype == random_genotype(1)


def test_mmcv_build_plugin_layer_names_the_blocks():
    from mmcv.cnn import build_plugin_layer

    import mmsase.models.plugins  # noqa: F401
    for cfg, abbr in ((dict(type='SASE'), 'sase'), (dict(type='SE'), 'se'),
                      (dict(type='SASESupernet'), 'sase_supernet')):
        name, layer = build_plugin_layer(cfg, postfix='_1', in_channels=C)
        assert name == abbr + '_1' and layer.in_channels == C
        assert layer(torch.randn(1, C, 3, 3)).shape == (1, C, 3, 3)
