"""Cost of the SASE search on ResNet-20, batch 64, CPU: time per iteration and peak memory of

* the derived network's training step (fixed SASE blocks),
* one supernet training step (weights only, all operations mixed: the search's weight step,
  with the shared ``alpha`` fixed),
* a first-order search iteration (α step on one split + weight step on the other),
* a second-order (unrolled) search iteration,

printed side by side with the ratios the issue sets as goals:
supernet <= 2x derived; first order <= 2.2x supernet; second order <= 2.5x first order
with peak memory <= 1.5x first order. Also timed: the three kinds of supernet forward/backward
pass the iterations are made of (gradients for alpha only, for the weights only, for both), and
from them the terms that decide whether second order stays within 2.5x first order and the
least ratio that passes run one after the other allow.

Time: the speed of this shared 2-core machine drifts — the same step measured 0.25 s in one
process and 0.38 s in the next — so one process builds all four and runs them in turns
(derived, supernet, first, second, derived, ...) for ``--rounds`` rounds (12): a drift then slows
every step alike. Reported: each step's median, and each ratio as the median of its per-round
ratios. Memory: each step in its own process (peak RSS above the RSS before its first step).

    python tools/analysis/benchmark_search.py [--batch-size 64] [--rounds 12] [--iters 3]
"""
import argparse
import json
import resource
import statistics
import subprocess
import sys

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


def prepare() -> None:
    """Registers mmsase's modules in the mmpretrain scope and seeds torch (before each
    model is built, so every step starts from the same weights)."""
    import torch
    from mmengine.registry import init_default_scope

    import mmsase.engine  # noqa: F401
    import mmsase.models  # noqa: F401
    init_default_scope('mmpretrain')
    torch.manual_seed(0)


def search_model(unroll: bool = False):
    """The ResNet-20 ``SASESearch`` model, in training mode."""
    from mmsase.models.algorithms import SASESearch
    prepare()
    return SASESearch(architecture=classifier_cfg(dict(type='SASESupernet')),
                      unroll=unroll).train()


def build_step(mode: str, batch_size: int):
    """One training iteration of ``mode`` as a function of no arguments."""
    import torch
    from mmengine.optim import OptimWrapper, OptimWrapperDict
    from mmpretrain.registry import MODELS

    from mmsase.models.sase.supernet import ArchitectureParams, bind_architecture
    w_batch, a_batch = make_batch(batch_size, 0), make_batch(batch_size, 1)
    if mode in ('derived', 'supernet'):
        attention = dict(type='SASE') if mode == 'derived' else dict(type='SASESupernet')
        prepare()
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
        model = search_model(unroll=mode == 'second_order')
        wrappers = OptimWrapperDict(
            weights=OptimWrapper(torch.optim.SGD(model.classifier.parameters(), lr=0.025,
                                                 momentum=0.9, weight_decay=5e-4)),
            architecture=OptimWrapper(torch.optim.Adam(model.architecture.parameters(),
                                                       lr=3e-4, betas=(0.5, 0.999),
                                                       weight_decay=1e-3)))

        def step():
            model.train_step(dict(weights=w_batch, architecture=a_batch), wrappers)

    return step


PASSES = ('alpha_only', 'weights_only', 'both')


def build_pass(kind: str, batch_size: int):
    """One forward/backward pass of the supernet asking autograd for the gradients of
    ``kind``: the building blocks of the search iterations (first order: an ``alpha_only``
    pass + the weight step; second order: ``weights_only`` (virtual step) + ``both`` (at w')
    + two ``alpha_only`` (at w+ and w-) + the weight step)."""
    import torch

    from mmsase.models.algorithms.darts import classification_loss
    model = search_model()
    batch = model.data_preprocessor(make_batch(batch_size, 1), True)
    alpha, weights = model.architecture.alpha, list(model.classifier.parameters())
    inputs = dict(alpha_only=[alpha], weights_only=weights, both=weights + [alpha])[kind]
    alpha_requires_grad = kind != 'weights_only'

    def step():
        alpha.requires_grad_(alpha_requires_grad)
        torch.autograd.grad(classification_loss(model.classifier, batch), inputs)
        alpha.requires_grad_(True)

    return step


def peak_memory(mode: str, batch_size: int, iters: int) -> dict:
    """Peak RSS of ``iters`` iterations of ``mode`` above the RSS before the first one."""
    step = build_step(mode, batch_size)
    before = rss_mb()
    for _ in range(iters):
        step()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return dict(mode=mode, peak_mb=peak - before)


def step_times(batch_size: int, rounds: int) -> dict:
    """``{mode: [seconds per round]}``, the modes run in turns in this process."""
    from benchmark import interleaved_times  # tools/analysis/benchmark.py, next to this file
    steps = {mode: build_step(mode, batch_size) for mode in MODES}
    steps.update({kind: build_pass(kind, batch_size) for kind in PASSES})
    return interleaved_times(steps, rounds, warmup=1)


def child(args) -> dict:
    if args.mode == 'timing':
        return step_times(args.batch_size, args.rounds)
    return peak_memory(args.mode, args.batch_size, args.iters)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--batch-size', type=int, default=64)
    parser.add_argument('--rounds', type=int, default=12,
                        help='rounds of the interleaved timing (one iteration of each step)')
    parser.add_argument('--iters', type=int, default=3,
                        help='iterations of each memory measurement')
    parser.add_argument('--mode', choices=MODES + ('timing', ), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode:  # a child process
        print(json.dumps(child(args)))
        return

    def run_child(mode):
        out = subprocess.run([sys.executable, __file__, '--mode', mode, '--batch-size',
                              str(args.batch_size), '--rounds', str(args.rounds), '--iters',
                              str(args.iters)], capture_output=True, text=True, check=True)
        return json.loads(out.stdout.strip().splitlines()[-1])

    mem = {mode: run_child(mode)['peak_mb'] for mode in MODES}
    times = run_child('timing')
    t = {name: statistics.median(times[name]) for name in MODES + PASSES}

    def ratio(a, b):  # median of the per-round ratios
        return statistics.median(x / y for x, y in zip(times[a], times[b]))

    print(f'ResNet-20, batch {args.batch_size}, CPU; time: median of {args.rounds} rounds, '
          'the steps taking turns in one process; memory: each step in its own process')
    print(f'{"step":<14}{"s/iter":>9}{"iter/s":>9}{"peak MB":>10}')
    for mode in MODES:
        print(f'{mode:<14}{t[mode]:>9.3f}{1 / t[mode]:>9.2f}{mem[mode]:>10.0f}')
    checks = [
        ('supernet / derived', ratio('supernet', 'derived'), 2.0),
        ('first order / supernet', ratio('first_order', 'supernet'), 2.2),
        ('second / first order', ratio('second_order', 'first_order'), 2.5),
        ('memory second / first', mem['second_order'] / max(mem['first_order'], 1e-9), 1.5),
    ]
    for name, value, goal in checks:
        verdict = 'met' if value <= goal else 'missed'
        print(f'{name:<24}{value:>7.3f}x  (goal <= {goal}x: {verdict})')
    print('supernet passes, s: ' + ', '.join(f'{kind} {t[kind]:.3f}' for kind in PASSES))
    # second = P_w + P_b + 2 P_a + W + r2 and first = P_a + W + r1, where W = P_w + o is the
    # weight step (o: its data preprocessing and optimizer step) and r1, r2 the time outside
    # the passes of the alpha steps, so
    # second - 2.5 first = (P_w - P_a) / 2 + (P_b - P_w) - 1.5 o + (r2 - 2.5 r1).
    p_a, p_w, p_b = (t[kind] for kind in PASSES)
    o = t['supernet'] - p_w
    terms = [('(P_w - P_a)/2', (p_w - p_a) / 2), ('P_b - P_w', p_b - p_w), ('-1.5 o', -1.5 * o)]
    excess = t['second_order'] - 2.5 * t['first_order']
    terms.append(('outside the passes', excess - sum(value for _, value in terms)))
    print(f'second - 2.5 x first = {excess:+.3f} s = '
          + ', '.join(f'{name} {value:+.3f}' for name, value in terms))
    # The least second / first can be with these passes run one after the other: P_b = P_w
    # (a pass for both does a weight pass's work) and nothing outside the passes.
    bound = (3 * p_w + 2 * p_a + o) / (p_w + p_a + o)
    print(f'passes one after the other: second / first >= (3 P_w + 2 P_a + o) / (P_w + P_a + o)'
          f' = {bound:.3f}x')


if __name__ == '__main__':
    main()
