"""The fused C++ inference path of the paper-genotype SASE block (mmsase.models.sase.fused).

The extension must build on this machine: :func:`test_extension_builds` fails otherwise
(unless ``MMSASE_NO_FUSED`` is set). The numerical tests skip, with the reason, when it
cannot be built; the dispatch tests need no compiler except where they check the fused path
is taken.
"""
import logging
import os

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from mmsase.models.sase import PAPER_GENOTYPE, SASE, fused, random_genotype
from mmsase.utils.cpp_extension import LazyExtension

from .helpers import randomize_, single_thread  # noqa: F401 (autouse fixture)

RTOL, ATOL = 1e-4, 1e-5  # float32 agreement with the reference path


@pytest.fixture(scope='module')
def ext():
    """The compiled extension, or a skip naming why there is none."""
    if fused.fused_disabled():
        pytest.skip(f'{fused.DISABLE_ENV} is set: the fused path is disabled')
    extension = fused.load_extension()
    if extension is None:
        pytest.skip('the fused SASE extension cannot be built on this machine '
                    '(see the warning logged by mmsase.models.sase.fused)')
    return extension


def lively_block(channels, seed=0):
    """A paper-genotype block in eval mode whose every branch varies with the input.

    Random weights alone often leave a ReLU output all zero (then m1 or ms is constant), so
    the weights feeding the four ReLUs (the two 2→1 fusions, the first FC, the first 3×3
    conv) are made positive; everything else stays random.
    """
    block = randomize_(SASE(channels), seed).eval()
    with torch.no_grad():
        for fusion in (block.edges.cs.fusion, block.fuse):
            fusion.conv.weight.abs_()
            fusion.bn.weight.abs_()
            fusion.bn.bias.fill_(0.2)
            fusion.bn.running_mean.zero_()
        block.edges.ce1.fc1.weight.abs_()
        block.edges.se.convs[0].weight.abs_()
    return block


def reference(block, x):
    with torch.no_grad():
        return block(x, fast=False)


def inputs(shape, scale=1.0, seed=0):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed)) * scale


def test_extension_builds():
    """Fails when the compiler or the source is broken (the other tests would only skip)."""
    if fused.fused_disabled():
        pytest.skip(f'{fused.DISABLE_ENV} is set: the fused path is disabled')
    assert fused.load_extension() is not None, 'the fused SASE extension failed to build'


@pytest.mark.parametrize('shape', [(2, 16, 7, 7), (1, 16, 13, 17), (3, 32, 13, 17),
                                   (1, 256, 7, 7), (2, 64, 56, 56), (2, 48, 1, 1),
                                   (1, 24, 3, 50), (4, 128, 14, 14)])
@pytest.mark.parametrize('scale', [1.0, 300.0])
def test_fused_matches_reference(ext, shape, scale):
    block = lively_block(shape[1], seed=sum(shape))
    x = inputs(shape, scale, seed=shape[-1])
    expected = reference(block, x)
    with torch.inference_mode():
        y = fused.fused_forward(block, x, ext)
    torch.testing.assert_close(y, expected, rtol=RTOL, atol=ATOL * scale)
    if scale == 1.0:  # the test means something: attention varies over channels and positions
        a = (expected / x).flatten(2)
        assert a.std(1).max() > 1e-3 and (shape[2] * shape[3] == 1 or a.std(2).max() > 1e-3)


@pytest.mark.parametrize('seed', range(4))
def test_fused_matches_reference_with_random_weights(ext, seed):
    block = randomize_(SASE(40), seed).eval()
    x = inputs((2, 40, 9, 11), 3.0, seed)
    with torch.no_grad():
        torch.testing.assert_close(fused.fused_forward(block, x, ext), reference(block, x),
                                   rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize('shape', [(3, 24, 40, 50), (1, 8, 64, 64), (5, 16, 9, 9)])
def test_threads_do_not_change_the_result(ext, shape):
    """Several threads, several chunks of positions per sample: no races, same values."""
    block = lively_block(shape[1])
    x = inputs(shape)
    results = []
    for threads in (1, 2, 3):
        torch.set_num_threads(threads)
        try:
            with torch.no_grad():
                results.append(fused.fused_forward(block, x, ext))
        finally:
            torch.set_num_threads(1)
    for y in results[1:]:
        torch.testing.assert_close(y, results[0], rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(results[0], reference(block, x), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize('shape', [(2, 16, 7, 7), (1, 33, 13, 17), (2, 8, 70, 70)])
def test_passes_compute_their_statistics(ext, shape):
    x = inputs(shape, 2.0)
    b, c, h, w = shape
    mean, peak, channel_mean = ext.pass_a(x)
    torch.testing.assert_close(mean, x.mean((2, 3)), rtol=1e-5, atol=1e-6)
    assert torch.equal(peak, x.amax((2, 3)))
    torch.testing.assert_close(channel_mean, x.mean(1, keepdim=True), rtol=1e-5, atol=1e-6)
    m2 = torch.rand(b, c, 1, 1)
    l4 = ((x * m2).pow(4).mean(1, keepdim=True) + 1e-6).pow(0.25)
    torch.testing.assert_close(ext.pass_b(x, m2), l4, rtol=1e-5, atol=1e-6)
    m1, ms = torch.rand(b, c, 1, 1), torch.rand(b, 1, h, w)
    assert torch.equal(ext.pass_c(x, m1, ms), x * (m1 + ms) / 2)  # same operation order


def test_passes_reject_unsupported_inputs(ext):
    x = torch.randn(2, 4, 5, 5)
    for bad in (x.double(), x.to(memory_format=torch.channels_last), x[0]):
        with pytest.raises(RuntimeError, match='sase_fused'):
            ext.pass_a(bad)
    with pytest.raises(RuntimeError, match='m2 must have 8 elements'):
        ext.pass_b(x, torch.rand(2, 3))


def test_fused_forward_checks_the_channel_count(ext):
    with pytest.raises(ValueError, match=r'expects \(B, 16, H, W\)'):
        fused.fused_forward(SASE(16).eval(), torch.randn(2, 8, 4, 4), ext)


# ---------------------------------------------------------------------------------------------
# Dispatch: SASE.forward takes the fused path only when it applies.
# ---------------------------------------------------------------------------------------------
@pytest.fixture
def fused_calls(monkeypatch):
    """Records each call of fused_forward (and runs it)."""
    calls = []
    original = fused.fused_forward

    def spy(block, x, extension=None):
        calls.append(tuple(x.shape))
        return original(block, x, extension)

    monkeypatch.setattr(fused, 'fused_forward', spy)
    return calls


def test_eval_inference_takes_the_fused_path(ext, fused_calls):
    block = lively_block(16)
    x = inputs((2, 16, 6, 7))
    with torch.inference_mode():
        y = block(x)
    with torch.no_grad():
        y2 = block(x)
    assert fused_calls == [(2, 16, 6, 7)] * 2
    torch.testing.assert_close(y, reference(block, x), rtol=RTOL, atol=ATOL)
    assert torch.equal(y, y2)


@pytest.mark.parametrize('case', ['train', 'grad', 'genotype', 'float64', 'channels_last',
                                  'fast_false', 'env', 'autocast', 'dispatch_mode',
                                  'requires_grad_input'])
def test_other_cases_take_the_eager_path(case, fused_calls, monkeypatch):
    genotype = random_genotype(3) if case == 'genotype' else None
    block = randomize_(SASE(16, genotype), 0).eval()
    x = inputs((2, 16, 5, 6))
    kwargs = {}
    no_grad = True
    if case == 'train':
        block.train()
    elif case in ('grad', 'requires_grad_input'):
        no_grad = False
        if case == 'requires_grad_input':
            x.requires_grad_()
    elif case == 'float64':
        block.double()
        x = x.double()
    elif case == 'channels_last':
        x = x.to(memory_format=torch.channels_last)
    elif case == 'fast_false':
        kwargs = dict(fast=False)
    elif case == 'env':
        monkeypatch.setenv(fused.DISABLE_ENV, '1')
    with torch.set_grad_enabled(not no_grad):
        if case == 'autocast':
            with torch.autocast('cpu', dtype=torch.bfloat16):
                block(x)
        elif case == 'dispatch_mode':
            with FlopCounterMode(display=False):
                block(x)
        else:
            block(x, **kwargs)
    assert fused_calls == []


def test_paper_genotype_given_explicitly_is_fused(ext, fused_calls):
    block = SASE(16, dict(PAPER_GENOTYPE)).eval()
    with torch.no_grad():
        block(torch.randn(1, 16, 4, 4))
    assert len(fused_calls) == 1


@pytest.mark.parametrize('value,disabled', [('', False), ('0', False), ('1', True),
                                            ('yes', True)])
def test_disable_variable(monkeypatch, value, disabled):
    monkeypatch.setenv(fused.DISABLE_ENV, value)
    assert fused.fused_disabled() is disabled


def test_build_failure_falls_back_with_one_warning(monkeypatch, caplog, fused_calls):
    import torch.utils.cpp_extension as cpp_extension

    def broken_load(*args, **kwargs):
        raise RuntimeError('Error building extension: no compiler')

    monkeypatch.setattr(fused.EXTENSION, '_module', None)
    monkeypatch.setattr(fused.EXTENSION, 'failed', False)
    monkeypatch.setattr(cpp_extension, 'load', broken_load)
    block = lively_block(16)
    x = inputs((2, 16, 5, 6))
    with caplog.at_level(logging.WARNING, logger=fused.__name__), torch.no_grad():
        y = block(x)
        block(x)
    warnings = [r for r in caplog.records if r.name == fused.__name__]
    assert len(warnings) == 1 and 'no compiler' in warnings[0].getMessage()
    assert fused_calls == []
    assert not fused.extension_available()
    torch.testing.assert_close(y, reference(block, x), rtol=1e-6, atol=1e-7)


def test_spatial_tail_matches_the_modules(ext):
    block = lively_block(8)
    u1, u2 = torch.rand(3, 1, 13, 17), torch.rand(3, 1, 13, 17) * 2
    with torch.no_grad():
        expected = block.edges.se(block.fuse(u1, u2))
        torch.testing.assert_close(fused._spatial_tail(block, u1, u2, ext), expected,
                                   rtol=1e-5, atol=1e-6)


def test_fusion_bn_without_running_stats_uses_the_modules(ext):
    """Such a BN normalises with batch statistics even in eval mode: the C++ tail (running
    statistics) must not be used, the module is."""
    block = lively_block(16)
    block.fuse.bn = torch.nn.BatchNorm2d(1, track_running_stats=False).eval()
    x = inputs((2, 16, 6, 5))
    with torch.no_grad():
        torch.testing.assert_close(fused.fused_forward(block, x, ext), reference(block, x),
                                   rtol=RTOL, atol=ATOL)


def test_builds_find_the_tools_beside_the_interpreter_first(monkeypatch):
    """Whether or not a virtualenv is activated, its ninja builds the kernels (two ninja
    versions would rebuild them at every switch)."""
    import sys

    import torch.utils.cpp_extension as cpp_extension
    seen = []
    monkeypatch.setattr(cpp_extension, 'load',
                        lambda **kwargs: seen.append(os.environ['PATH']) or 'module')
    monkeypatch.setenv('PATH', '/usr/bin:/bin')
    extension = LazyExtension(fused.EXTENSION.source, 'probe', 'probe')
    assert extension.load() == 'module'
    assert seen == [os.pathsep.join([os.path.dirname(sys.executable), '/usr/bin:/bin'])]
    assert os.environ['PATH'] == '/usr/bin:/bin'
