"""tools/analysis/benchmark.py: block names checked before anything is built, the table and
its ratios, and a tiny real run (quarter-width ResNet-50 at 32x32) through ``main``."""
import importlib.util
import os.path as osp

import pytest
import torch
from _tools import ROOT


@pytest.fixture(scope='module')
def bench():
    spec = importlib.util.spec_from_file_location(
        'benchmark_tool', osp.join(ROOT, 'tools', 'analysis', 'benchmark.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_blocks_default_to_every_short_name(bench):
    from mmsase.models.plugins.factory import SHORT_NAMES
    args = bench.parse_args([])
    assert args.blocks == list(SHORT_NAMES)
    assert args.batch_sizes == [1, 8] and args.train_batch_size == 8


def test_blocks_keep_their_order_without_plain_or_repeats(bench):
    args = bench.parse_args(['--blocks', 'sase', 'plain', 'SE', 'mmsase.CBAM', 'se', 'cbam',
                             '--batch-sizes', '2', '4'])
    assert args.blocks == ['sase', 'SE', 'mmsase.CBAM']
    assert args.train_batch_size == 4
    assert bench.parse_args(['--train-batch-size', '0']).train_batch_size == 0


def test_unknown_block_fails_before_anything_is_built(bench, monkeypatch, capsys):
    from mmsase.models.plugins.factory import known_blocks

    def must_not_run(*args, **kwargs):
        raise AssertionError('called before the names were checked')

    monkeypatch.setattr(bench, 'attention_config', must_not_run)
    monkeypatch.setattr(bench, 'build_classifier', must_not_run)
    with pytest.raises(SystemExit) as exit_info:
        bench.main(['--blocks', 'se', 'squeeze', 'cbam'])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "unknown attention block 'squeeze'" in err
    assert known_blocks() in err


def test_settings_fall_back_to_the_authors_without_a_config(bench, monkeypatch):
    import mmsase

    def no_config(name):
        raise FileNotFoundError(name)

    monkeypatch.setattr(mmsase, 'config_path', no_config)
    assert bench.attention_config('eca') == (
        dict(type='eca', stage_args=dict(kernel_size=(3, 5, 5, 7))), 'defaults')
    assert bench.attention_config('gsop') == (
        dict(type='gsop', stage_args=dict(reduction_stride=(2, 1, 1, 1))), 'defaults')
    assert bench.attention_config('CBAM') == (dict(type='CBAM'), 'defaults')


ROWS = [  # plain is not first: the table puts it first, the others in the given order
    dict(model='se', params=28_088_024, gflops=8.184, eval_ms={1: 66.0, 8: 550.0},
         train_ms={8: 1100.0}),
    dict(model='plain', params=25_557_032, gflops=8.172, eval_ms={1: 60.0, 8: 500.0},
         train_ms={8: 1000.0}),
    dict(model='cbam', params=28_090_000, gflops=8.19, eval_ms={1: 75.0, 8: 600.0},
         train_ms={8: 1500.0}),
    dict(model='sase', params=28_100_000, gflops=8.2, eval_ms={1: 90.0, 8: 560.0},
         train_ms={8: 1250.0}),
]


def test_table_ratios_are_to_plain(bench, capsys):
    bench.print_table(ROWS, 'title', markdown=True)
    out = capsys.readouterr().out.splitlines()
    assert out[1] == 'title'
    assert out[2].split() == ['block', 'params', '(M)', 'GFLOPs/img', 'eval', 'b=1', 'ms', 'x',
                              'plain', 'eval', 'b=8', 'ms', 'x', 'plain', 'train', 'b=8', 'ms',
                              'x', 'plain']
    assert [line.split() for line in out[4:8]] == [
        ['plain', '25.56', '8.172', '60.0', '1.000', '500.0', '1.000', '1000.0', '1.000'],
        ['se', '28.09', '8.184', '66.0', '1.100', '550.0', '1.100', '1100.0', '1.100'],
        ['cbam', '28.09', '8.190', '75.0', '1.250', '600.0', '1.200', '1500.0', '1.500'],
        ['sase', '28.10', '8.200', '90.0', '1.500', '560.0', '1.120', '1250.0', '1.250']]
    assert out[9:15] == [
        '| block | params (M) | GFLOPs/img | eval b=1 ms | × plain | eval b=8 ms | × plain '
        '| train b=8 ms | × plain |',
        '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
        '| plain | 25.56 | 8.172 | 60.0 | 1.000 | 500.0 | 1.000 | 1000.0 | 1.000 |',
        '| se | 28.09 | 8.184 | 66.0 | 1.100 | 550.0 | 1.100 | 1100.0 | 1.100 |',
        '| cbam | 28.09 | 8.190 | 75.0 | 1.250 | 600.0 | 1.200 | 1500.0 | 1.500 |',
        '| sase | 28.10 | 8.200 | 90.0 | 1.500 | 560.0 | 1.120 | 1250.0 | 1.250 |']
    assert out[15:] == [
        'batch 1: inference overhead SE +10.0%, SASE +50.0% -> SASE/SE overhead ratio 5.00 '
        '(misses the <= 1.5 goal)',
        'batch 8: inference overhead SE +10.0%, SASE +12.0% -> SASE/SE overhead ratio 1.20 '
        '(meets the <= 1.5 goal)']


def test_no_verdict_without_both_se_and_sase(bench, capsys):
    bench.print_table(ROWS[:3], 'title')
    out = capsys.readouterr().out
    assert 'overhead' not in out and '|' not in out
    assert out.splitlines()[-1].split()[0] == 'cbam'


def test_tiny_run_of_main(bench, monkeypatch, capsys):
    printed = []
    print_table = bench.print_table

    def keep_rows(rows, *args):
        printed.append(rows)
        print_table(rows, *args)

    monkeypatch.setattr(bench, 'print_table', keep_rows)
    threads = torch.get_num_threads()
    try:  # one thread: several contend on this small shared machine and take 3x longer
        # BN in training needs 2 values per channel: layer4 is 1x1 at 32x32, hence batch 2
        bench.main(['--blocks', 'se', 'eca', 'gsop', '--batch-sizes', '1', '2', '--repeats',
                    '1', '--width', '16', '--image-size', '32', '--threads', '1',
                    '--markdown'])
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    assert 'kernel_size' in out and 'reduction_stride' in out  # the authors' settings
    assert 'ResNet-50, width 16 at 32x32' in out
    rows = {row['model']: row for row in printed[0]}
    assert list(rows) == ['plain', 'se', 'eca', 'gsop']
    plain = rows['plain']
    for name, row in rows.items():
        assert list(row['eval_ms']) == [1, 2] and list(row['train_ms']) == [2]
        assert all(ms > 0 for ms in [*row['eval_ms'].values(), *row['train_ms'].values()])
        if name != 'plain':  # every block adds parameters and convolution/linear FLOPs
            assert row['params'] > plain['params'] and row['gflops'] > plain['gflops']
    assert plain['params'] == bench.count_params(bench.build_classifier(None, width=16))
    lines = {cells[0]: cells for cells in map(str.split, out.splitlines())
             if len(cells) == 9 and cells[0] in rows}  # the rows of the text table
    for name, row in rows.items():
        cells = lines[name]
        expected = [row['eval_ms'][1] / plain['eval_ms'][1],
                    row['eval_ms'][2] / plain['eval_ms'][2],
                    row['train_ms'][2] / plain['train_ms'][2]]
        assert [float(cells[i]) for i in (4, 6, 8)] == pytest.approx(expected, abs=6e-4)
    assert sum(line.startswith('| ') for line in out.splitlines()) == 2 + len(rows)
    assert 'overhead' not in out
