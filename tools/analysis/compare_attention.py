"""Compare attention blocks on one classification config over several seeds, with intervals.

    python tools/analysis/compare_attention.py configs/demo/cifar_resnet20_digits.py \
        [--blocks plain se sase cbam ...] [--seeds 0 1 2] [--epochs N] [--jobs K] \
        [--work-dir DIR] [--cfg-options k=v ...]

Each block (a short name of the factory such as ``se`` or ``cbam``, a registry name such as
``mmsase.CBAM``, ``plain`` for none, a SASE genotype JSON, or a config file; ``NAME=BLOCK``
names a row) replaces ``model.backbone.attention`` of the config; a config file is trained as
it is. Every block is trained once per seed (``randomness.seed``; the same seeds for every
block) through tools/train.py's config preparation and mmengine's Runner, then evaluated
once, after the last epoch, on the config's validation set.

Table: parameters and GFLOPs (one input of the validation set, convolutions and matrix
products only), top-1 mean ± the 95 % t interval over seeds, and the difference to ``plain``
paired by seed, with its interval; "better"/"worse" only where that interval excludes 0.
Written to WORK_DIR/comparison.{csv,json,png}; each run's result to
WORK_DIR/runs/BLOCK/seed_S/result.json. A rerun skips the runs that finished, so a stopped
comparison resumes where it stopped (and more seeds or blocks can be added later).
``--jobs K`` trains K runs at once, each with the cores shared out (default: one run per core).
"""
import argparse
import csv
import io
import json
import math
import os.path as osp
import re

from mmengine.config import DictAction

from mmsase.analysis.runs import RunSpec, available_cores, finish_run_args, run_all
from mmsase.analysis.stats import mean_ci, paired_diff_ci
from mmsase.utils.atomic_io import atomic_write
from mmsase.utils.launch import run_cli

REFERENCE = 'plain'
DEFAULT_CONFIG = 'configs/demo/cifar_resnet20_digits.py'


def parse_block(item: str) -> dict:
    """``{'label', 'attention', 'set_attention', 'config'}`` of one ``--blocks`` entry; raises
    for a name that is no block and a file that does not exist, before anything runs."""
    label, _, value = item.rpartition('=') if '=' in item else ('', '', item)
    if value.lower() in (REFERENCE, 'none'):
        return dict(label=label or REFERENCE, attention=None, set_attention=True, config=None)
    if value.endswith('.py'):
        if not osp.isfile(value):
            raise FileNotFoundError(f'config {value} (in --blocks) does not exist')
        return dict(label=label or osp.splitext(osp.basename(value))[0], attention=None,
                    set_attention=False, config=value)
    if value.endswith('.json'):
        from mmsase.models.sase.genotype import load_genotype
        load_genotype(value)  # fails here on a bad genotype
        stem = osp.splitext(osp.basename(value))[0]
        name = osp.basename(osp.dirname(osp.abspath(value))) if stem == 'genotype' else stem
        return dict(label=label or f'sase:{name}', set_attention=True, config=None,
                    attention=dict(type='mmsase.SASE', genotype=osp.abspath(value)))
    from mmsase.models.plugins.factory import SHORT_NAMES, resolve_block
    resolve_block(value)  # an UnknownBlockError lists the blocks
    if value.lower() in SHORT_NAMES:
        cls_name, defaults = SHORT_NAMES[value.lower()]
        attention = dict(type=f'mmsase.{cls_name}', **defaults)
    else:
        attention = dict(type=value)
    return dict(label=label or value, attention=attention, set_attention=True, config=None)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', nargs='?', default=DEFAULT_CONFIG,
                        help=f'base classification config (default {DEFAULT_CONFIG})')
    parser.add_argument('--blocks', nargs='+', default=[REFERENCE, 'se', 'sase'],
                        help='blocks to compare: short or registry names, plain, genotype '
                        'JSONs, configs; NAME=BLOCK names a row (default: plain se sase)')
    parser.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2])
    parser.add_argument('--epochs', type=int, help="training epochs (default: the config's)")
    parser.add_argument('--work-dir', help='default: work_dirs/compare/CONFIG_NAME')
    parser.add_argument('--jobs', type=int, default=available_cores(),
                        help='runs trained at once (default: the number of cores)')
    parser.add_argument('--threads', type=int,
                        help='torch threads per run (default: the cores / --jobs)')
    parser.add_argument('--metric', default='accuracy/top1')
    parser.add_argument('--level', type=float, default=0.95, help='interval level')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                        help='override keys of every run, e.g. train_dataloader.batch_size=32')
    args = parser.parse_args(argv)
    args.blocks = [parse_block(item) for item in args.blocks]
    labels = [b['label'] for b in args.blocks]
    duplicates = sorted({label for label in labels if labels.count(label) > 1})
    if duplicates:
        parser.error(f'rows named twice: {duplicates} (name them with NAME=BLOCK)')
    finish_run_args(parser, args, 'compare')
    return args


def run_specs(args) -> list:
    specs = []
    for block in args.blocks:
        folder = re.sub(r'[^\w.+-]+', '_', block['label'])
        for seed in args.seeds:
            specs.append(RunSpec(
                label=block['label'], seed=seed, config=block['config'] or args.config,
                work_dir=osp.join(args.work_dir, 'runs', folder, f'seed_{seed}'),
                attention=block['attention'], set_attention=block['set_attention'],
                epochs=args.epochs, cfg_options=dict(args.cfg_options)))
    return specs


def verdict(diff) -> str:
    if math.isnan(diff.half_width):
        return 'no interval (1 seed)'
    if not diff.excludes_zero():
        return 'undecided (interval holds 0)'
    return 'better' if diff.mean > 0 else 'worse'


def summarize(labels, seeds, results, metric='accuracy/top1', level=0.95) -> list:
    """One row per label: complexity, the metric's mean and interval over seeds, and the
    paired difference to ``plain`` (when it is one of the labels)."""
    values = {label: [results[label, seed]['metrics'][metric] for seed in seeds]
              for label in labels}
    rows = []
    for label in labels:
        first = results[label, seeds[0]]
        ci = mean_ci(values[label], level)
        row = dict(block=label, params=first.get('params'), gflops=first.get('gflops'),
                   n=ci.n, mean=ci.mean, ci=ci.half_width, low=ci.low, high=ci.high,
                   std=ci.std, per_seed=dict(zip(map(str, seeds), values[label])))
        if REFERENCE in values and label != REFERENCE:
            diff = paired_diff_ci(values[label], values[REFERENCE], level)
            row.update(diff_mean=diff.mean, diff_ci=diff.half_width, diff_low=diff.low,
                       diff_high=diff.high, reading=verdict(diff))
        rows.append(row)
    return rows


def fmt(value, spec) -> str:
    return '' if value is None or (isinstance(value, float) and math.isnan(value)) \
        else format(value, spec)


def table(rows, seeds, level=0.95, metric='accuracy/top1') -> str:
    pct = f'{level * 100:g} %'
    header = ['block', 'params (M)', 'GFLOPs', f'{metric} mean ± {pct} CI',
              f'Δ vs {REFERENCE} (paired)', 'reading']
    lines = [[r['block'], fmt(r['params'] and r['params'] / 1e6, '.4f'),
              fmt(r['gflops'], '.4f'),
              f'{r["mean"]:.2f} ± {fmt(r["ci"], ".2f") or "n/a"}',
              f'{r["diff_mean"]:+.2f} ± {fmt(r["diff_ci"], ".2f") or "n/a"}'
              if 'diff_mean' in r else '', r.get('reading', '')] for r in rows]
    widths = [max(len(str(line[j])) for line in [header] + lines) for j in range(len(header))]
    out = [f'{len(seeds)} seeds per block ({", ".join(map(str, seeds))}), the same for every '
           f'block; {pct} t intervals; Δ in points, paired by seed']
    for line in [header] + lines:
        out.append('  '.join(str(c).ljust(w) if j in (0, 5) else str(c).rjust(w)
                             for j, (c, w) in enumerate(zip(line, widths))).rstrip())
    return '\n'.join(out)


def write_csv(rows, seeds) -> str:
    keys = ['block', 'params', 'gflops', 'n', 'mean', 'ci', 'low', 'high', 'std',
            'diff_mean', 'diff_ci', 'diff_low', 'diff_high', 'reading']
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator='\n')
    writer.writerow(keys + [f'seed_{s}' for s in seeds])
    for r in rows:
        writer.writerow([r.get(k, '') for k in keys] + [r['per_seed'][str(s)] for s in seeds])
    return buffer.getvalue()


def plot(rows, metric, level) -> bytes:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    has_diff = any('diff_mean' in r for r in rows)
    fig, axes = plt.subplots(1, 2 if has_diff else 1, figsize=(10 if has_diff else 5.5, 3.8),
                             squeeze=False)
    x = range(len(rows))
    ax = axes[0][0]
    for i, r in enumerate(rows):
        ax.scatter([i] * len(r['per_seed']), list(r['per_seed'].values()), s=12,
                   color='0.6', zorder=1)
    ax.errorbar(x, [r['mean'] for r in rows], yerr=[r['ci'] for r in rows], fmt='o',
                capsize=5, color='C0', zorder=2)
    ax.set_xticks(list(x), [r['block'] for r in rows], rotation=30, ha='right')
    ax.set_xlim(-0.5, len(rows) - 0.5)
    ax.set_ylabel(f'{metric} (%)')
    ax.set_title(f'mean ± {level * 100:g} % CI (dots: seeds)')
    if has_diff:
        ax = axes[0][1]
        diff_rows = [r for r in rows if 'diff_mean' in r]
        ax.errorbar(range(len(diff_rows)), [r['diff_mean'] for r in diff_rows],
                    yerr=[r['diff_ci'] for r in diff_rows], fmt='o', capsize=5, color='C1')
        ax.axhline(0, color='0.4', lw=0.8, ls='--')
        ax.set_xticks(range(len(diff_rows)), [r['block'] for r in diff_rows], rotation=30,
                      ha='right')
        ax.set_xlim(-0.5, len(diff_rows) - 0.5)
        ax.set_ylabel('points')
        ax.set_title(f'difference to {REFERENCE}, paired by seed')
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format='png', dpi=120)
    plt.close(fig)
    return buffer.getvalue()


def finite(value):
    """``value`` with NaN (an interval of one seed) as None, for JSON."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite(v) for v in value]
    return value


def main(argv=None):
    args = parse_args(argv)
    specs = run_specs(args)
    print(f'{len(args.blocks)} blocks × {len(args.seeds)} seeds = {len(specs)} runs of '
          f'{args.config} in {args.work_dir}', flush=True)
    results = run_all(specs, jobs=args.jobs, threads=args.threads,
                      echo=lambda line: print(line, flush=True))
    by_run = {(s.label, s.seed): r for s, r in zip(specs, results)}
    labels = [b['label'] for b in args.blocks]
    rows = summarize(labels, args.seeds, by_run, args.metric, args.level)
    text = table(rows, args.seeds, args.level, args.metric)
    print('\n' + text)
    out = osp.join(args.work_dir, 'comparison')
    atomic_write(out + '.csv', write_csv(rows, args.seeds))
    atomic_write(out + '.json', json.dumps(
        dict(config=osp.abspath(args.config), seeds=args.seeds, epochs=args.epochs,
             metric=args.metric, level=args.level, cfg_options=dict(args.cfg_options),
             rows=finite(rows)), indent=2))
    atomic_write(out + '.png', plot(rows, args.metric, args.level))
    print(f'\nwritten: {out}.csv, {out}.json, {out}.png')
    return rows


if __name__ == '__main__':
    run_cli(main)
