"""Does the SASE search find the same block twice? K searches that differ only in seed.

    python tools/analysis/search_stability.py [configs/demo/sase_search_resnet20_digits.py] \
        [--seeds 0 1 2] [--epochs N] [--jobs K] [--work-dir DIR] [--cfg-options k=v ...]

Each seed is an ordinary search (tools/train.py's config preparation and mmengine's Runner,
``randomness.seed`` = the seed: α's initialisation, the weights' and the data order; the
split of the training set into the weight and architecture halves stays fixed), left in
WORK_DIR/runs/seed_S with its genotype.json, and its final α in result.json; a rerun skips
the searches that finished. Then, per edge: the winner of each run, how often each operation
won, the share of runs agreeing with the most frequent winner, the entropy of softmax(α)
(ln 7 = 1.946 nats is uniform: α has not moved and the pick is noise) and the winner's
margin over the runner-up; over the edges, the mean pairwise agreement between runs.
Written to WORK_DIR/stability.{json,csv,png} (the plot: winners per edge across seeds).
With ``--pt`` each search's genotype is also chosen by perturbation (DARTS-PT,
``tools/derive_genotype.py --method pt``, on ``--pt-batches`` batches of the architecture
split) and the same agreement is reported for those genotypes.
"""
import argparse
import csv
import io
import json
import os.path as osp

from mmengine.config import DictAction

from mmsase.analysis.runs import RunSpec, available_cores, finish_run_args, run_all
from mmsase.utils.atomic_io import atomic_write
from mmsase.utils.launch import run_cli

DEFAULT_CONFIG = 'configs/demo/sase_search_resnet20_digits.py'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', nargs='?', default=DEFAULT_CONFIG,
                        help=f'search config (default {DEFAULT_CONFIG})')
    parser.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2])
    parser.add_argument('--epochs', type=int, help="search epochs (default: the config's)")
    parser.add_argument('--work-dir', help='default: work_dirs/stability/CONFIG_NAME')
    parser.add_argument('--jobs', type=int, default=available_cores(),
                        help='searches run at once (default: the number of cores)')
    parser.add_argument('--threads', type=int,
                        help='torch threads per search (default: the cores / --jobs)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                        help='override keys of every search')
    parser.add_argument('--pt', action='store_true',
                        help='also choose each genotype by perturbation (DARTS-PT)')
    parser.add_argument('--pt-batches', type=int, default=4,
                        help='architecture-split batches each DARTS-PT evaluation reads')
    args = parser.parse_args(argv)
    finish_run_args(parser, args, 'stability')
    return args


def report(summary) -> str:
    from mmsase.models.search_space import EDGES
    seeds = summary['seeds']
    header = ['edge'] + [f'seed {s}' for s in seeds] + ['agreement', 'entropy', 'margin']
    lines = []
    for edge in EDGES:
        row = summary['edges'][edge]
        lines.append([edge] + [w[edge] for w in summary['winners']] + [
            f'{row["agreement"] * len(seeds):.0f}/{len(seeds)} {row["modal"]}',
            f'{row["mean_entropy"]:.4f}', f'{sum(row["margin"]) / len(seeds):.4f}'])
    widths = [max(len(line[j]) for line in [header] + lines) for j in range(len(header))]
    out = [f'{len(seeds)} searches, seeds {", ".join(map(str, seeds))}; winner per edge and '
           f'seed; agreement: runs with the most frequent winner; entropy of softmax(α) '
           f'(mean over runs; uniform = {summary["max_entropy"]:.4f} nats); margin: winner '
           f'minus runner-up weight (mean over runs)']
    out += ['  '.join(c.ljust(w) for c, w in zip(line, widths)).rstrip()
            for line in [header] + lines]
    out.append(f'mean pairwise agreement: {summary["pairwise_agreement"] * 100:.0f} % of the '
               f'6 edges; {summary["distinct_genotypes"]} distinct genotype(s) in '
               f'{len(seeds)} runs')
    return '\n'.join(out)


def write_csv(summary) -> str:
    from mmsase.models.search_space import EDGES
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator='\n')
    seeds = summary['seeds']
    writer.writerow(['edge', 'modal', 'agreement', 'mean_entropy']
                    + [f'winner_seed_{s}' for s in seeds] + [f'entropy_seed_{s}' for s in seeds]
                    + [f'margin_seed_{s}' for s in seeds])
    for edge in EDGES:
        row = summary['edges'][edge]
        writer.writerow([edge, row['modal'], row['agreement'], row['mean_entropy']]
                        + [w[edge] for w in summary['winners']] + row['entropy']
                        + row['margin'])
    return buffer.getvalue()


def plot(summary) -> bytes:
    """Edges × seeds: each cell the winning operation (colour: its place in the edge's
    set) and its softmax weight."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import numpy as np

    from mmsase.models.search_space import EDGES
    seeds, names = summary['seeds'], summary['op_names']
    index = np.array([[names[edge].index(w[edge]) for w in summary['winners']]
                      for edge in EDGES])
    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * len(seeds), 3.6))
    ax.imshow(index, cmap='Pastel1', vmin=0, vmax=8, aspect='auto')
    for e, edge in enumerate(EDGES):
        for r, winners in enumerate(summary['winners']):
            weight = max(summary['edges'][edge]['probs'][r])
            ax.text(r, e, f'{winners[edge]}\n{weight:.3f}', ha='center', va='center',
                    fontsize=7)
    ax.set_xticks(range(len(seeds)), [f'seed {s}' for s in seeds])
    ax.set_yticks(range(len(EDGES)), [
        f'{edge} ({summary["edges"][edge]["agreement"] * 100:.0f} %)' for edge in EDGES])
    ax.set_title(f'winner per edge (weight); agreement {summary["pairwise_agreement"] * 100:.0f}'
                 ' % pairwise', fontsize=9)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format='png', dpi=120)
    plt.close(fig)
    return buffer.getvalue()


def pt_agreement(args, specs) -> dict:
    """Each search's genotype chosen by perturbation (derived once, then kept), and the
    mean pairwise agreement of those genotypes."""
    import subprocess
    import sys
    from itertools import combinations

    from mmsase.models.sase.genotype import load_genotype
    from mmsase.models.search_space import EDGES
    root = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    genotypes = []
    for spec in specs:
        out = osp.join(spec.work_dir, 'genotype_pt.json')
        if not osp.isfile(out):
            with open(osp.join(spec.work_dir, 'last_checkpoint')) as f:
                checkpoint = f.read().strip()
            options = [f'{k}={v}' for k, v in args.cfg_options.items()]
            subprocess.run([sys.executable, osp.join(root, 'tools', 'derive_genotype.py'),
                            checkpoint, '--method', 'pt', '--config', args.config,
                            '--max-batches', str(args.pt_batches), '--seed', str(spec.seed),
                            '--out', out] + (['--cfg-options', *options] if options else []),
                           check=True, stdout=subprocess.DEVNULL)
        genotypes.append(load_genotype(out))
    pairs = list(combinations(genotypes, 2))
    agreement = sum(sum(a[e] == b[e] for e in EDGES) / len(EDGES)
                    for a, b in pairs) / max(1, len(pairs))
    return dict(genotypes=genotypes, pairwise_agreement=agreement,
                distinct_genotypes=len({tuple(g.values()) for g in genotypes}))


def pt_report(pt: dict, seeds) -> str:
    from mmsase.models.search_space import EDGES
    lines = ['genotypes chosen by perturbation (DARTS-PT):']
    for edge in EDGES:
        lines.append(f'{edge:<5}' + '  '.join(g[edge].ljust(11) for g in pt['genotypes']))
    lines.append(f'mean pairwise agreement: {pt["pairwise_agreement"] * 100:.0f} % of the 6 '
                 f'edges; {pt["distinct_genotypes"]} distinct genotype(s) in {len(seeds)} runs')
    return '\n'.join(lines)


def main(argv=None):
    from mmsase.analysis.stability import stability
    args = parse_args(argv)
    specs = [RunSpec(label='search', seed=seed, config=args.config,
                     work_dir=osp.join(args.work_dir, 'runs', f'seed_{seed}'),
                     epochs=args.epochs, cfg_options=dict(args.cfg_options), complexity=False)
             for seed in args.seeds]
    print(f'{len(specs)} searches of {args.config} in {args.work_dir}', flush=True)
    results = run_all(specs, jobs=args.jobs, threads=args.threads,
                      echo=lambda line: print(line, flush=True))
    missing = [s.seed for s, r in zip(specs, results) if 'alpha' not in r]
    if missing:
        raise ValueError(f'the runs of seeds {missing} hold no α ("architecture.alpha"): '
                         f'{args.config} is not a SASE search config')
    summary = stability([r['alpha'] for r in results], args.seeds)
    summary['val_metrics'] = [r['metrics'] for r in results]
    print('\n' + report(summary))
    if args.pt:
        summary['pt'] = pt_agreement(args, specs)
        print('\n' + pt_report(summary['pt'], args.seeds))
    out = osp.join(args.work_dir, 'stability')
    atomic_write(out + '.json', json.dumps(
        dict(summary, config=osp.abspath(args.config), epochs=args.epochs,
             cfg_options=dict(args.cfg_options)), indent=2))
    atomic_write(out + '.csv', write_csv(summary))
    atomic_write(out + '.png', plot(summary))
    print(f'\nwritten: {out}.json, {out}.csv, {out}.png')
    return summary


if __name__ == '__main__':
    run_cli(main)
