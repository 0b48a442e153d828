"""tools/analysis/compare_attention.py: block parsing before anything runs, a tiny real
comparison (2 blocks x 2 seeds x 1 epoch on a subset of the digits, 2 processes), its table,
CSV/JSON/PNG against the result files, and a stopped comparison resumed without repeating
the runs that had finished."""
import csv
import importlib.util
import json
import os
import os.path as osp

import pytest
from _tools import ROOT

from mmsase.analysis.stats import mean_ci, paired_diff_ci

# ResNet-8 (same widths as ResNet-20), 64 training and 32 test digits: one iteration an epoch
TINY = ['--epochs', '1', '--cfg-options', 'train_dataloader.dataset.indices=64',
        'val_dataloader.dataset.indices=32', 'model.backbone.depth=8']


@pytest.fixture(scope='module')
def compare():
    spec = importlib.util.spec_from_file_location(
        'compare_attention', osp.join(ROOT, 'tools', 'analysis', 'compare_attention.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_blocks_are_parsed_before_anything_runs(compare, tmp_path):
    from mmsase.models.plugins.factory import UnknownBlockError
    genotype = tmp_path / 'genotype.json'
    from mmsase.models.sase.genotype import random_genotype
    genotype.write_text(json.dumps(random_genotype(0)))
    args = compare.parse_args(['--blocks', 'plain', 'se', 'mca_skew', 'mmsase.CBAM',
                               f'mine={genotype}', str(genotype),
                               osp.join(ROOT, 'configs/demo/cifar_resnet20_se_digits.py')])
    rows = {b['label']: b for b in args.blocks}
    assert list(rows) == ['plain', 'se', 'mca_skew', 'mmsase.CBAM', 'mine',
                          f'sase:{tmp_path.name}', 'cifar_resnet20_se_digits']
    assert rows['plain']['attention'] is None and rows['plain']['set_attention']
    assert rows['se']['attention'] == dict(type='mmsase.SE')
    assert rows['mca_skew']['attention'] == dict(type='mmsase.MCA', moment='skew')
    assert rows['mine']['attention'] == dict(type='mmsase.SASE', genotype=str(genotype))
    assert not rows['cifar_resnet20_se_digits']['set_attention']
    assert args.seeds == [0, 1, 2] and args.config.endswith('cifar_resnet20_digits.py')
    with pytest.raises(UnknownBlockError, match='registered blocks'):
        compare.parse_args(['--blocks', 'plain', 'squeeze'])
    with pytest.raises(SystemExit):  # two rows named se
        compare.parse_args(['--blocks', 'se', 'se=cbam'])


@pytest.mark.slow
def test_two_blocks_two_seeds_then_a_stopped_comparison_resumes(compare, tmp_path, capsys):
    work_dir = str(tmp_path / 'compare')
    argv = ['--blocks', 'plain', 'se', '--seeds', '0', '1', '--work-dir', work_dir,
            '--jobs', '2', *TINY]
    rows = compare.main(argv)
    out = capsys.readouterr().out
    assert 'training 4 runs, 2 at a time' in out
    results = {}
    for block in ('plain', 'se'):
        for seed in (0, 1):
            with open(osp.join(work_dir, 'runs', block, f'seed_{seed}', 'result.json')) as f:
                results[block, seed] = json.load(f)
    assert results['se', 1]['settings']['attention'] == dict(type='mmsase.SE')
    assert results['plain', 0]['settings']['seed'] == 0
    assert results['se', 0]['params'] > results['plain', 0]['params']  # SE's two FCs
    assert results['plain', 0]['gflops'] > 0

    # the table: mean and interval over the seeds, the difference paired by seed
    top1 = {k: r['metrics']['accuracy/top1'] for k, r in results.items()}
    plain, se = rows
    assert plain['block'] == 'plain' and 'diff_mean' not in plain
    assert plain['mean'] == pytest.approx(mean_ci([top1['plain', 0], top1['plain', 1]]).mean)
    diff = paired_diff_ci([top1['se', 0], top1['se', 1]], [top1['plain', 0], top1['plain', 1]])
    assert (se['diff_mean'], se['diff_ci']) == pytest.approx((diff.mean, diff.half_width))
    assert f'{se["mean"]:.2f} ± {se["ci"]:.2f}' in out
    assert f'{se["diff_mean"]:+.2f} ± {se["diff_ci"]:.2f}' in out
    with open(osp.join(work_dir, 'comparison.csv')) as f:
        table = list(csv.DictReader(f))
    assert [r['block'] for r in table] == ['plain', 'se']
    assert float(table[1]['seed_1']) == top1['se', 1]
    with open(osp.join(work_dir, 'comparison.json')) as f:
        assert json.load(f)['rows'][1]['diff_mean'] == pytest.approx(diff.mean)
    assert osp.getsize(osp.join(work_dir, 'comparison.png')) > 0

    # stopped before se/seed 1 finished: its result file is missing; a rerun trains only it
    stopped = osp.join(work_dir, 'runs', 'se', 'seed_1', 'result.json')
    os.remove(stopped)
    kept = {k: os.stat(osp.join(work_dir, 'runs', b, f'seed_{s}', 'result.json')).st_mtime_ns
            for k in results if k != ('se', 1) for b, s in [k]}
    compare.main(argv[:-len(TINY) - 2] + ['--jobs', '1', *TINY])
    out = capsys.readouterr().out
    assert '3 of 4 runs already finished (skipped)' in out
    assert 'training 1 runs' in out and out.count(' seed ') == 1, out
    for (block, seed), mtime in kept.items():
        path = osp.join(work_dir, 'runs', block, f'seed_{seed}', 'result.json')
        assert os.stat(path).st_mtime_ns == mtime
    assert osp.isfile(stopped)

    # a finished comparison reruns nothing; other settings in the same work dir are refused
    compare.main(argv)
    assert 'training' not in capsys.readouterr().out
    with pytest.raises(ValueError, match='other settings'):
        compare.main(argv[:-1] + ['model.backbone.depth=14'])


def test_the_demo_says_what_one_run_per_row_can_show(tmp_path, monkeypatch, capsys):
    """After its table the demo prints how far repeated one-run numbers fall and points to
    `make compare` (the spread: mean_ci of the issue's three runs, 96.76 ± 4.70)."""
    spec = importlib.util.spec_from_file_location('demo', osp.join(ROOT, 'tools', 'demo.py'))
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    monkeypatch.setattr(demo, 'run', lambda args, log: 'accuracy/top1: 50.0')
    demo.classification(str(tmp_path), 1, genotype_file=None)
    out = capsys.readouterr().out
    assert '95.28, 96.11 and 98.89 %' in out and '96.76 ± 4.70 at 95 %' in out
    assert '`make compare`' in out
    assert out.index('top-1 (%)') < out.index('`make compare`')
    with open(osp.join(ROOT, 'Makefile')) as f:
        assert 'compare: $(STAMP)\n\t$(PYTHON) tools/analysis/compare_attention.py\n' in f.read()
