"""Does the search find what was planted? Planted-operation benchmarks for the SASE search.

    python tools/analysis/search_sanity.py [--quick] [--bench std skew ...] \
        [--methods darts_1st recommended_pt ...] [--method recommended_pt] [--seeds 0 1 2] \
        [--steps 320] [--jobs K] [--out DIR]

Each benchmark (:mod:`mmsase.analysis.planted`: ``std``, ``skew``, ``max``, ``spatial_skew``,
``noise``) searches one supernet block on data whose classes differ only in a statistic that
a known set of operations reads; a method recovers it when the scored edge picks an
operation of that set (``noise``: when no edge picks the test-only noise operation). Methods:
``darts_1st``, ``darts_2nd``, ``warmup``, ``beta_decay`` (the authors' λ_max 25),
``smoothing`` (SDARTS-RS), ``fair_darts``, ``recommended`` (warm-up + centred β-decay +
random smoothing, argmax) and ``recommended_pt`` (the same, then DARTS-PT selection).

Prints one row per benchmark × method × seed (the picked operation, recovered or not, the
best weight of the recovered set, its margin over the best other operation, the probe's
accuracy) and per method ``K/N``, then the last line ``recovered K/N`` for ``--method``
(default ``recommended_pt``). ``--quick``: that method only, 3 seeds (a few minutes on 2
cores). Writes OUT/sanity.{json,csv} when ``--out`` is given.
"""
import argparse
import csv
import io
import json
import multiprocessing
import os
import os.path as osp
from dataclasses import asdict

from mmsase.utils.atomic_io import atomic_write
from mmsase.utils.launch import run_cli

DEFAULT_METHOD = 'recommended_pt'


def parse_args(argv=None):
    from mmsase.analysis.planted import BENCHMARKS, methods
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--quick', action='store_true',
                        help='only --method, 3 seeds: the CI check')
    parser.add_argument('--bench', nargs='+', default=list(BENCHMARKS),
                        choices=list(BENCHMARKS))
    parser.add_argument('--methods', nargs='+', choices=list(methods(8)),
                        help='methods in the table (default: all; --quick: --method)')
    parser.add_argument('--method', default=DEFAULT_METHOD, choices=list(methods(8)),
                        help=f'the method of the last line (default {DEFAULT_METHOD})')
    parser.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2])
    parser.add_argument('--steps', type=int, default=320, help='search steps per run')
    parser.add_argument('--jobs', type=int, default=os.cpu_count() or 1,
                        help='runs at once, one torch thread each')
    parser.add_argument('--out', help='directory for sanity.json and sanity.csv')
    args = parser.parse_args(argv)
    if args.quick:
        args.methods = [args.method]
    args.methods = args.methods or list(methods(8))
    if args.method not in args.methods:
        parser.error(f'--method {args.method} is not among --methods {args.methods}')
    if args.steps < 8:
        parser.error(f'--steps must be at least 8 (one per epoch), got {args.steps}')
    return args


def _run(job):
    import torch
    torch.set_num_threads(1)
    from mmsase.analysis.planted import run_planted
    benchmark, method, seed, steps = job
    return run_planted(benchmark, method, seed, steps=steps)


def table(results) -> str:
    header = ['benchmark', 'method', 'seed', 'picked', 'recovered', 'weight', 'margin', 'acc %']
    rows = [[r.benchmark, r.method, str(r.seed),
             ' '.join(f'{edge}={op}' for edge, op in r.winners.items()),
             'yes' if r.recovered else 'NO', f'{r.planted_weight:.3f}', f'{r.margin:+.3f}',
             f'{r.accuracy:.1f}'] for r in results]
    widths = [max(len(line[j]) for line in [header] + rows) for j in range(len(header))]
    return '\n'.join('  '.join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip()
                     for line in [header] + rows)


def write_outputs(out: str, results) -> None:
    records = [asdict(r) for r in results]
    atomic_write(osp.join(out, 'sanity.json'), json.dumps(records, indent=1).encode())
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator='\n')
    writer.writerow(['benchmark', 'method', 'seed', 'picked', 'recovered', 'planted_weight',
                     'margin', 'accuracy'])
    for r in results:
        writer.writerow([r.benchmark, r.method, r.seed, json.dumps(r.winners), r.recovered,
                         f'{r.planted_weight:.6f}', f'{r.margin:.6f}', f'{r.accuracy:.2f}'])
    atomic_write(osp.join(out, 'sanity.csv'), buffer.getvalue().encode())


def main(argv=None):
    args = parse_args(argv)
    jobs = [(bench, method, seed, args.steps) for bench in args.bench
            for method in args.methods for seed in args.seeds]
    print(f'{len(jobs)} searches ({len(args.bench)} benchmarks x {len(args.methods)} methods '
          f'x {len(args.seeds)} seeds, {args.steps} steps each), {args.jobs} at once',
          flush=True)
    if args.jobs > 1:
        with multiprocessing.get_context('spawn').Pool(args.jobs) as pool:
            results = pool.map(_run, jobs, chunksize=1)
    else:
        results = [_run(job) for job in jobs]
    print(table(results))
    from mmsase.analysis.planted import summarise
    for method in args.methods:
        found, total = summarise([r for r in results if r.method == method])
        print(f'{method}: {found}/{total}')
    if args.out:
        write_outputs(args.out, results)
        print(f'written: {osp.join(args.out, "sanity.json")}, sanity.csv')
    found, total = summarise([r for r in results if r.method == args.method])
    print(f'recovered {found}/{total}')
    if found != total:
        raise SystemExit(1)


if __name__ == '__main__':
    run_cli(main)
