"""tools/analysis/benchmark_ean.py: plain, all-plugged and a code's network for one block, in one
run (a tiny real run: quarter-width ResNet-50 at 32x32)."""
import importlib.util
import os.path as osp

import pytest
from _tools import ROOT


@pytest.fixture(scope='module')
def bench():
    spec = importlib.util.spec_from_file_location(
        'benchmark_ean_tool', osp.join(ROOT, 'tools', 'analysis', 'benchmark_ean.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bad_block_or_code_fails_before_anything_is_built(bench, capsys):
    for argv, message in ((['--block', 'nope'], 'nope'),
                          (['--code', '10010110100110'], 'expected 16 bits'),
                          (['--code', '8-0-0-0'], "characters ['8']")):
        with pytest.raises(SystemExit):
            bench.parse_args(argv)
        assert message in capsys.readouterr().err


def test_a_tiny_run_prints_the_four_networks(bench, capsys):
    code = osp.join(ROOT, 'configs', 'ean', 'codes', 'resnet50_dia_authors.json')
    rows = bench.main(['--block', 'se', '--code', code, '--width', '16', '--image-size', '32',
                       '--repeats', '1', '--batch-sizes', '1', '2', '--threads', '1',
                       '--markdown'])
    names = [r['model'] for r in rows]
    assert names == ['plain', 'se all', 'se shared all', 'se shared 110-0011-110010-011']
    params = {r['model']: r['params'] for r in rows}
    assert params['se shared all'] == params['se shared 110-0011-110010-011']  # code-independent
    assert params['plain'] < params['se shared all'] < params['se all']
    assert all(set(r['eval_ms']) == {1, 2} and r['gflops'] > 0 for r in rows)
    out = capsys.readouterr().out
    assert 'code 110-0011-110010-011 = (6, 3, 50, 3), 9/16 plugged' in out
    assert '| se shared 110-0011-110010-011 |' in out and 'eval b=2 ms' in out
