"""tools/analysis/compare_attention.py: block parsing before anything runs, a tiny real
comparison (2 blocks x 2 seeds x 1 epoch on a subset of the digits, 2 processes), its table,
CSV/JSON/PNG against the result files, and a stopped comparison resumed without repeating
the runs that had finished; summarize() / verdict() and the tool on given per-seed numbers
against the paired t interval written out."""
import csv
import importlib.util
import json
import math
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


# --------------------------------------------------------------------------------------------
# summarize() / verdict() on given per-seed numbers, against the paired t interval by hand.
# --------------------------------------------------------------------------------------------
#: Student's t quantiles at 3 degrees of freedom (4 seeds), and the normal's 0.975 quantile.
T_QUANTILE_3 = {0.90: 2.353363434801823, 0.95: 3.182446305284263, 0.99: 5.840909309733349}
Z_975 = 1.959963984540054
SEEDS = [3, 0, 7, 1]  # not sorted: the pairing is by seed, not by position
PLAIN = {3: 70.0, 0: 72.0, 7: 69.0, 1: 71.5}
DIFFS = {  # per-seed difference to plain of each row
    'better': {3: 1.0, 0: 1.4, 7: 0.8, 1: 1.2},
    'worse': {3: -0.6, 0: -0.9, 7: -0.5, 1: -0.8},
    'undecided': {3: 1.0, 0: -0.8, 7: 0.5, 1: -0.3},
    # mean / standard error = 3.10: above t_{0.95,3} and z_{0.975}, below t_{0.975,3}
    'edge': {3: 0.2, 0: 1.0, 7: 0.6, 1: 1.4},
}


def value(label, seed):
    return PLAIN[seed] + (DIFFS[label][seed] if label != 'plain' else 0.0)


def results_in_shuffled_order():
    keys = [(label, seed) for seed in (1, 7, 0, 3) for label in ('edge', 'plain', 'worse',
                                                                   'better', 'undecided')]
    return {key: dict(metrics={'accuracy/top1': value(*key)}, params=10 + len(key[0]),
                      gflops=0.5) for key in keys}


def t_interval(values, level):
    """(mean, half width, sample std) of Student's t interval, written out."""
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean)**2 for v in values) / (n - 1))
    return mean, T_QUANTILE_3[level] * std / math.sqrt(n), std


def expected_reading(label, level):
    mean, half, _ = t_interval([value(label, s) - PLAIN[s] for s in SEEDS], level)
    if mean - half > 0:
        return 'better'
    return 'worse' if mean + half < 0 else 'undecided (interval holds 0)'


def test_t_quantiles_of_the_test():
    stats = pytest.importorskip('scipy.stats')
    for level, t in T_QUANTILE_3.items():
        assert stats.t.ppf((1 + level) / 2, 3) == pytest.approx(t, rel=1e-9)
    assert stats.norm.ppf(0.975) == pytest.approx(Z_975, rel=1e-9)


@pytest.mark.parametrize('level', [0.90, 0.95, 0.99])
def test_summarize_pairs_by_seed_with_the_t_interval(compare, level):
    labels = ['plain', 'better', 'worse', 'undecided', 'edge']
    rows = compare.summarize(labels, SEEDS, results_in_shuffled_order(), level=level)
    assert [r['block'] for r in rows] == labels
    for row in rows:
        label = row['block']
        values = [value(label, s) for s in SEEDS]
        mean, half, std = t_interval(values, level)
        assert (row['n'], row['mean'], row['ci'], row['std']) == pytest.approx(
            (4, mean, half, std), rel=1e-9)
        assert (row['low'], row['high']) == pytest.approx((mean - half, mean + half))
        assert row['per_seed'] == {str(s): value(label, s) for s in SEEDS}
        assert row['params'] == 10 + len(label)
        if label == 'plain':
            assert 'diff_mean' not in row and 'reading' not in row
            continue
        diffs = [value(label, s) - PLAIN[s] for s in SEEDS]  # row − plain: > 0 is better
        mean, half, _ = t_interval(diffs, level)
        assert (row['diff_mean'], row['diff_ci']) == pytest.approx((mean, half), rel=1e-9)
        assert (row['diff_low'], row['diff_high']) == pytest.approx((mean - half, mean + half))
        assert row['reading'] == expected_reading(label, level)
    readings = {r['block']: r.get('reading') for r in rows}
    assert readings['better'] == 'better' and readings['worse'] == 'worse'
    assert readings['undecided'] == 'undecided (interval holds 0)'
    # the level decides the edge row: 90 % excludes 0, 95 % and 99 % hold it
    assert readings['edge'] == ('better' if level == 0.90 else 'undecided (interval holds 0)')


def test_the_numbers_separate_paired_from_unpaired_and_t_from_z():
    """Why the numbers above pin the method: unpaired intervals, or pairing by position
    after a reorder, or the normal quantile would read some rows otherwise."""
    better = [value('better', s) for s in SEEDS]
    plain = [PLAIN[s] for s in SEEDS]
    _, half_better, _ = t_interval(better, 0.95)
    _, half_plain, _ = t_interval(plain, 0.95)
    # the two separate intervals overlap, so an unpaired reading would not say "better"
    assert sum(better) / 4 - half_better < sum(plain) / 4 + half_plain
    # paired with another seed's plain value the differences no longer exclude 0
    shifted = [b - p for b, p in zip(better, plain[1:] + plain[:1])]
    mean, half, _ = t_interval(shifted, 0.95)
    assert mean - half < 0 < mean + half
    # the edge row: a z interval (1.96) would say better, the t interval (3.18) does not
    diffs = list(DIFFS['edge'].values())
    mean, half, std = t_interval(diffs, 0.95)
    assert mean - Z_975 * std / 2 > 0 > mean - half


def test_verdict_on_given_intervals(compare):
    from mmsase.analysis.stats import Interval
    assert compare.verdict(Interval(0.5, 0.4, 4, 0.3)) == 'better'
    assert compare.verdict(Interval(-0.5, 0.4, 4, 0.3)) == 'worse'
    assert compare.verdict(Interval(0.5, 0.6, 4, 0.3)) == 'undecided (interval holds 0)'
    assert compare.verdict(Interval(-0.5, 0.6, 4, 0.3)) == 'undecided (interval holds 0)'
    assert compare.verdict(Interval(0.5, math.nan, 1, math.nan)) == 'no interval (1 seed)'


@pytest.mark.parametrize('level', [None, '0.9'])
def test_main_reads_the_runs_at_the_level_asked(compare, tmp_path, monkeypatch, capsys, level):
    """The tool end to end on given results (the runs replaced by the numbers above): the
    table, the JSON and the CSV carry the paired t intervals at ``--level``."""
    table = results_in_shuffled_order()
    names = {'plain': 'plain', 'better': 'se', 'worse': 'cbam', 'undecided': 'eca',
             'edge': 'srm'}

    def run_all(specs, jobs=1, threads=None, echo=print):
        assert [s.seed for s in specs] == SEEDS * 5
        return [table[spec.label, spec.seed] for spec in specs]

    monkeypatch.setattr(compare, 'run_all', run_all)
    work_dir = tmp_path / 'compare'
    argv = ['--blocks', *(f'{label}={block}' if label != 'plain' else 'plain'
                          for label, block in names.items()),
            '--seeds', *map(str, SEEDS), '--work-dir', str(work_dir)]
    rows = compare.main(argv + (['--level', level] if level else []))
    level = float(level or 0.95)
    out = capsys.readouterr().out
    assert f'{level * 100:g} % CI' in out
    readings = {r['block']: r.get('reading') for r in rows}
    for label in DIFFS:
        assert readings[label] == expected_reading(label, level)
        diffs = [value(label, s) - PLAIN[s] for s in SEEDS]
        mean, half, _ = t_interval(diffs, level)
        assert f'{mean:+.2f} ± {half:.2f}' in out
    saved = json.loads((work_dir / 'comparison.json').read_text())
    assert saved['level'] == level and saved['seeds'] == SEEDS
    assert [r['reading'] for r in saved['rows'][1:]] == [readings[k] for k in DIFFS]
    with open(work_dir / 'comparison.csv') as f:
        csv_rows = list(csv.DictReader(f))
    edge = csv_rows[-1]
    assert edge['block'] == 'edge'
    assert [float(edge[f'seed_{s}']) for s in SEEDS] == [value('edge', s) for s in SEEDS]
    assert float(edge['diff_ci']) == pytest.approx(
        t_interval(list(DIFFS['edge'].values()), level)[1])
