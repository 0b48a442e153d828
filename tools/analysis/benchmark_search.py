"""Cost of the SASE search on ResNet-20, batch 64, CPU: iterations/s and peak memory of

* the derived network's training step (fixed SASE blocks),
* one supernet training step (weights only, all operations mixed: the search's weight step,
  with the shared ``alpha`` fixed),
* a first-order search iteration (α step on one split + weight step on the other),
* a second-order (unrolled) search iteration,

each measured in its own process (peak RSS above the RSS before the first step), printed
side by side with the ratios the issue sets as goals:
supernet <= 2x derived; first order <= 2.2x supernet; second order <= 2.5x first order
with peak memory <= 1.5x first order.

Timings on a shared 2-core machine drift by ±10 % between processes, so every mode is
measured in ``--repeats`` processes, the modes taking turns (derived, supernet, first, second,
derived, ...), and the median over the processes is reported.

    python tools/analysis/benchmark_search.py [--batch-size 64] [--iters 6] [--repeats 3]
"""
import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

MODES = ('derived', 'supernet', 'first_order', 'second_order')


def rss_mb() -> float:
    with open('/proc/self/statm') as f:
        pages = int(f.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def classifier_cfg(attention):
    return dict(
        type='ImageClassifier',
        backbone=dict(type='mmsase.CifarResNet', depth=20, attention=attention),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=10, in_channels=64),
        data_preprocessor=dict(type='ClsDataPreprocessor', num_classes=10, mean=[0, 0, 0],
                               std=[1, 1, 1]))


def make_batch(batch_size, seed):
    import torch
    from mmpretrain.structures import DataSample
    g = torch.Generator().manual_seed(seed)
    inputs = [torch.randint(0, 256, (3, 32, 32), generator=g, dtype=torch.uint8)
              for _ in range(batch_size)]
    samples = [DataSample().set_gt_label(int(i % 10)) for i in range(batch_size)]
    return dict(inputs=inputs, data_samples=samples)


def measure(mode: str, batch_size: int, iters: int) -> dict:
    import torch
    from mmengine.optim import OptimWrapper, OptimWrapperDict
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS

    import mmsase.engine  # noqa: F401
    import mmsase.models  # noqa: F401
    from mmsase.models.algorithms import SASESearch
    from mmsase.models.sase.supernet import ArchitectureParams, bind_architecture
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    w_batch, a_batch = make_batch(batch_size, 0), make_batch(batch_size, 1)
    if mode in ('derived', 'supernet'):
        attention = dict(type='SASE') if mode == 'derived' else dict(type='SASESupernet')
        model = MODELS.build(classifier_cfg(attention))
        if mode == 'supernet':
            # as in the search's weight step: one shared alpha, held by no optimizer and
            # not differentiated (SASESearch._update_weights)
            arch = ArchitectureParams().requires_grad_(False)
            bind_architecture(model, arch)
        wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.025, momentum=0.9,
                                               weight_decay=5e-4))
        model.train()

        def step():
            model.train_step(w_batch, wrapper)
    else:
        model = SASESearch(architecture=classifier_cfg(dict(type='SASESupernet')),
                           unroll=mode == 'second_order')
        wrappers = OptimWrapperDict(
            weights=OptimWrapper(torch.optim.SGD(model.classifier.parameters(), lr=0.025,
                                                 momentum=0.9, weight_decay=5e-4)),
            architecture=OptimWrapper(torch.optim.Adam(model.architecture.parameters(),
                                                       lr=3e-4, betas=(0.5, 0.999),
                                                       weight_decay=1e-3)))
        model.train()

        def step():
            model.train_step(dict(weights=w_batch, architecture=a_batch), wrappers)

    before = rss_mb()
    step()  # warm-up (allocator, momentum buffers)
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return dict(mode=mode, seconds=statistics.median(times), peak_mb=peak - before)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--batch-size', type=int, default=64)
    parser.add_argument('--iters', type=int, default=6)
    parser.add_argument('--repeats', type=int, default=3,
                        help='processes per mode, taking turns; the median is reported')
    parser.add_argument('--mode', choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode:  # a child process
        print(json.dumps(measure(args.mode, args.batch_size, args.iters)))
        return
    runs = {mode: [] for mode in MODES}
    for _ in range(max(1, args.repeats)):
        for mode in MODES:
            out = subprocess.run([sys.executable, __file__, '--mode', mode, '--batch-size',
                                  str(args.batch_size), '--iters', str(args.iters)],
                                 capture_output=True, text=True, check=True)
            runs[mode].append(json.loads(out.stdout.strip().splitlines()[-1]))
    rows = {
        mode: dict(seconds=statistics.median(r['seconds'] for r in results),
                   peak_mb=statistics.median(r['peak_mb'] for r in results))
        for mode, results in runs.items()
    }
    print(f'ResNet-20, batch {args.batch_size}, CPU, median of {args.iters} iterations in each '
          f'of {max(1, args.repeats)} processes per step')
    print(f'{"step":<14}{"s/iter":>9}{"iter/s":>9}{"peak MB":>10}')
    for mode in MODES:
        r = rows[mode]
        print(f'{mode:<14}{r["seconds"]:>9.3f}{1 / r["seconds"]:>9.2f}{r["peak_mb"]:>10.0f}')
    t = {m: rows[m]['seconds'] for m in MODES}
    mem = {m: rows[m]['peak_mb'] for m in MODES}
    checks = [
        ('supernet / derived', t['supernet'] / t['derived'], 2.0),
        ('first order / supernet', t['first_order'] / t['supernet'], 2.2),
        ('second / first order', t['second_order'] / t['first_order'], 2.5),
        ('memory second / first', mem['second_order'] / max(mem['first_order'], 1e-9), 1.5),
    ]
    for name, value, goal in checks:
        print(f'{name:<24}{value:>6.2f}x  (goal <= {goal}x: {"met" if value <= goal else "missed"})')


if __name__ == '__main__':
    main()
