"""Parameters, FLOPs and CPU latency of plain / SE / SASE networks, measured in one run.

    python tools/analysis/benchmark.py                       # ResNet-50 classifiers
    python tools/analysis/benchmark.py --detection           # + Faster R-CNN R50 plain vs SASE
    python tools/analysis/benchmark.py --batch-sizes 8 --repeats 10

Ratios are to the plain network of the same run, so they are comparable on any machine.
The SASE overhead goal (issue 3): (SASE/plain - 1) <= 1.5 x (SE/plain - 1) at batch 8, eval.
"""
import argparse
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

ATTENTIONS = {'plain': None, 'SE': dict(type='SE'), 'SASE': dict(type='SASE')}


def build_classifier(attention):
    from mmpretrain.models import ImageClassifier

    import mmsase.models  # noqa: F401
    return ImageClassifier(
        backbone=dict(type='mmsase.AttentionResNet', depth=50, attention=attention),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=1000, in_channels=2048))


def count_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def count_flops(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def interleaved_times(fns: dict, repeats: int, warmup: int = 2) -> dict:
    """Seconds of each call of each function, ``{name: [seconds] * repeats}``, timed
    round-robin (one call of each function per round).

    Timing the models one after another lets drift on a shared machine (other jobs, clock
    changes) land on one model; interleaving spreads it over all of them.
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def interleaved_latency(fns: dict, repeats: int, warmup: int = 2) -> dict:
    """Median seconds per call of each function, timed round-robin
    (:func:`interleaved_times`)."""
    times = interleaved_times(fns, repeats, warmup)
    return {name: statistics.median(t) for name, t in times.items()}


def inference(call, *args):
    """``call(*args)`` under ``torch.inference_mode``, as a function of no arguments."""
    def run():
        with torch.inference_mode():
            call(*args)
    return run


def benchmark_classifiers(batch_sizes, repeats, size=224):
    models = {name: build_classifier(attention) for name, attention in ATTENTIONS.items()}
    rows = []
    for batch in batch_sizes:
        x = torch.randn(batch, 3, size, size)
        labels = torch.randint(0, 1000, (batch, ))

        def train_fn(model):
            optimizer = torch.optim.SGD(model.parameters(), lr=1e-4)

            def train_step():
                logits = model.head.fc(model.neck(model.backbone(x))[-1])
                loss = torch.nn.functional.cross_entropy(logits, labels)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            return train_step

        for model in models.values():
            model.eval()
        flops = {name: count_flops(inference(m.backbone, x)) / batch
                 for name, m in models.items()}
        eval_s = interleaved_latency({n: inference(m.backbone, x) for n, m in models.items()},
                                     repeats)
        for model in models.values():
            model.train()
        train_s = interleaved_latency({n: train_fn(m) for n, m in models.items()},
                                      max(3, repeats // 2), warmup=1)
        for name, model in models.items():
            rows.append(dict(model=name, batch=batch, params=count_params(model),
                             gflops=flops[name] / 1e9, eval_ms=eval_s[name] * 1e3,
                             train_ms=train_s[name] * 1e3))
    return rows


def print_table(rows, title):
    print(f'\n{title}')
    header = (f'{"model":<8}{"batch":>6}{"params (M)":>12}{"GFLOPs/img":>12}'
              f'{"eval ms":>10}{"x plain":>9}{"train ms":>10}{"x plain":>9}')
    print(header)
    print('-' * len(header))
    plain = {r['batch']: r for r in rows if r['model'] == 'plain'}
    for r in sorted(rows, key=lambda r: (r['batch'], list(ATTENTIONS).index(r['model']))):
        p = plain[r['batch']]
        print(f'{r["model"]:<8}{r["batch"]:>6}{r["params"] / 1e6:>12.2f}{r["gflops"]:>12.2f}'
              f'{r["eval_ms"]:>10.1f}{r["eval_ms"] / p["eval_ms"]:>9.3f}'
              f'{r["train_ms"]:>10.1f}{r["train_ms"] / p["train_ms"]:>9.3f}')
    for batch in sorted(plain):
        by_name = {r['model']: r for r in rows if r['batch'] == batch}
        se = by_name['SE']['eval_ms'] / plain[batch]['eval_ms'] - 1
        sase = by_name['SASE']['eval_ms'] / plain[batch]['eval_ms'] - 1
        line = f'batch {batch}: inference overhead SE {se * 100:+.1f}%, SASE {sase * 100:+.1f}%'
        if se <= 0:
            print(line + ' -> SE shows no overhead in this run (too noisy to compare)')
            continue
        verdict = 'meets' if sase <= 1.5 * se else 'misses'
        print(line + f' -> SASE/SE overhead ratio {sase / se:.2f} ({verdict} the <= 1.5 goal)')


def build_detector(with_sase: bool):
    from mmdet.registry import MODELS
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    import mmsase
    init_default_scope('mmdet')
    name = 'faster_rcnn_r50_sase_1x_coco.py' if with_sase else 'faster_rcnn_r50_1x_coco.py'
    cfg = Config.fromfile(mmsase.config_path(name))
    cfg.model.backbone.init_cfg = None
    return MODELS.build(cfg.model).eval()


def benchmark_detectors(sizes, repeats):
    """Latency of the whole detector and of its backbone + FPN alone. The heads' work
    depends on the proposals, which depend on the (random) weights and so differ between the
    two networks (RoIAlign with ``sampling_ratio=0`` samples each bin in proportion to its
    box's size; NMS's work depends on the boxes' overlaps). The backbone + FPN does the same
    work for any weights, and is where SASE adds its cost."""
    from mmdet.structures import DetDataSample
    models = {name: build_detector(name == 'SASE') for name in ('plain', 'SASE')}
    print('\nFaster R-CNN R50-FPN inference, batch 1')
    print(f'{"model":<8}{"input":>10}{"params (M)":>12}{"backbone+FPN ms":>17}{"x plain":>9}'
          f'{"detector ms":>13}{"x plain":>9}')
    for h, w in sizes:
        x = torch.randn(1, 3, h, w)
        sample = DetDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w),
                                             scale_factor=(1.0, 1.0)))
        fns = {(n, 'features'): inference(m.extract_feat, x) for n, m in models.items()}
        fns.update({(n, 'detector'): inference(m.predict, x, [sample])
                    for n, m in models.items()})
        seconds = interleaved_latency(fns, repeats, warmup=1)
        for name, model in models.items():
            feat, full = seconds[name, 'features'], seconds[name, 'detector']
            print(f'{name:<8}{f"{h}x{w}":>10}{count_params(model) / 1e6:>12.2f}'
                  f'{feat * 1e3:>17.1f}{feat / seconds["plain", "features"]:>9.3f}'
                  f'{full * 1e3:>13.1f}{full / seconds["plain", "detector"]:>9.3f}')


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--batch-sizes', type=int, nargs='+', default=[1, 8])
    parser.add_argument('--repeats', type=int, default=10)
    parser.add_argument('--threads', type=int, default=None)
    parser.add_argument('--detection', action='store_true',
                        help='also time Faster R-CNN R50 plain vs SASE')
    parser.add_argument('--detection-only', action='store_true')
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f'torch {torch.__version__}, {torch.get_num_threads()} threads')
    if not args.detection_only:
        rows = benchmark_classifiers(args.batch_sizes, args.repeats)
        print_table(rows, 'ResNet-50 classifiers at 224x224 (1000 classes)')
    if args.detection or args.detection_only:
        benchmark_detectors([(800, 1333), (512, 512)], max(3, args.repeats // 3))


if __name__ == '__main__':
    main()
