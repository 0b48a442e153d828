"""Parameters, FLOPs and CPU latency of ResNet-50 with attention blocks, side by side, in one run.

    python tools/analysis/benchmark.py                        # plain + every block of the factory
    python tools/analysis/benchmark.py --blocks se cbam sase --markdown
    python tools/analysis/benchmark.py --detection            # + Faster R-CNN R50 plain vs SASE
    python tools/analysis/benchmark.py --batch-sizes 8 --repeats 10

What is measured, on CPU in float32 with random weights and inputs, for plain ResNet-50 and
ResNet-50 with each block of ``--blocks`` (``mmsase.AttentionResNet``, the block where it says
it goes):

* params (M): of the whole classifier (backbone, 1000-class head);
* GFLOPs/img: the backbone's forward, counted by ``torch.utils.flop_counter.FlopCounterMode``,
  which counts convolutions and matrix products only, not element-wise work (pooling, gating,
  normalisation) -- most blocks' cost is of that kind, so read their latency, not their FLOPs;
* eval b=N: median milliseconds of the backbone's forward in eval mode at each batch size of
  ``--batch-sizes`` (``--repeats`` calls each);
* train b=N: median milliseconds of a training step (classifier forward, cross-entropy,
  backward, SGD step) at ``--train-batch-size`` (default the largest batch size).

The models are timed round-robin, one call of each model per round, so that the drift of a
shared machine spreads over all of them. "x plain" is a model's time over plain ResNet-50's
time in the same run: 1.10 means the block adds 10%. Ratios are comparable across machines
and runs, milliseconds are not. The SASE overhead goal (issue 3):
(SASE/plain - 1) <= 1.5 x (SE/plain - 1) at batch 8, eval.

Each block has its authors' settings: the ``model.backbone.attention`` of the shipped config
``resnet50_<name>_in1k.py`` where there is one, else the factory's defaults plus
:data:`AUTHOR_SETTINGS`; the run prints which. Only the attention is taken from a config, so
every network keeps ResNet-50's strides: GSoP's config also gives layer4 stride 1 (the
classifier of GSoP-Net1), which would quadruple layer4's work -- a cost of that network, not
of the block.
"""
import argparse
import gc
import statistics
import time

import torch

from mmsase.analysis.complexity import count_flops, count_params

REFERENCE = 'plain'

#: Per-stage arguments of the authors, for blocks whose config is not found.
AUTHOR_SETTINGS = {
    'eca': dict(stage_args=dict(kernel_size=(3, 5, 5, 7))),
    'gsop': dict(stage_args=dict(reduction_stride=(2, 1, 1, 1))),
}


def short_name(block: str) -> str:
    """``'mmsase.SE'`` / ``'SE'`` / ``'se'`` -> ``'se'``."""
    return block.lower().split('.')[-1]


def parse_blocks(names) -> list:
    """The blocks to compare with plain ResNet-50, in the given order, without repeats or
    ``plain``; raises the factory's ``UnknownBlockError`` (which lists the registered blocks)
    for a name that is not a block, before anything is built."""
    from mmsase.models.plugins.factory import resolve_block
    blocks = []
    for name in names:
        if short_name(name) == REFERENCE:
            continue
        resolve_block(name)
        if short_name(name) not in map(short_name, blocks):
            blocks.append(name)
    return blocks


def attention_config(block: str):
    """``(attention config, where it comes from)`` of ``block``: the shipped config's
    ``model.backbone.attention`` if there is one, else the factory's defaults plus
    :data:`AUTHOR_SETTINGS`."""
    from mmengine.config import Config

    import mmsase
    name = short_name(block)
    for candidate in (f'resnet50_{name}_in1k.py', f'{name}/resnet50_{name}_in1k.py'):
        try:
            path = mmsase.config_path(candidate)
        except FileNotFoundError:
            continue
        attention = Config.fromfile(path).model.backbone.get('attention')
        if attention is not None:
            return attention.to_dict(), path[path.rfind('configs'):]
    return dict(type=block, **AUTHOR_SETTINGS.get(name, {})), 'defaults'


def build_classifier(attention, width: int = 64):
    """ResNet-50 classifier with ``attention`` (None = plain); ``width`` is the stem's and the
    first stage's channels (64 in ResNet-50; smaller only for quick checks)."""
    from mmpretrain.models import ImageClassifier

    import mmsase.models  # noqa: F401
    return ImageClassifier(
        backbone=dict(type='mmsase.AttentionResNet', depth=50, attention=attention,
                      stem_channels=width, base_channels=width),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=1000, in_channels=32 * width))


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


def training_step(model, x, labels):
    """One SGD step of the classifier ``model`` on ``(x, labels)``, as a function of no
    arguments."""
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4)

    def step():
        logits = model.head.fc(model.neck(model.backbone(x))[-1])
        loss = torch.nn.functional.cross_entropy(logits, labels)
        loss.backward()
        optimizer.step()
        # free the gradients now: only the model being timed holds any
        optimizer.zero_grad(set_to_none=True)
    return step


def inference_rows(models: dict, batch_sizes, repeats: int, size: int = 224) -> list:
    """One row per classifier of ``models`` (in eval mode): ``dict(model=name, params=...,
    gflops=per image, eval_ms={batch: ms})``, the backbones timed round-robin."""
    rows = {name: dict(model=name, params=count_params(m), eval_ms={})
            for name, m in models.items()}
    x = torch.randn(min(batch_sizes), 3, size, size)
    for name, model in models.items():
        rows[name]['gflops'] = count_flops(inference(model.backbone, x)) / len(x) / 1e9
    for batch in batch_sizes:
        x = torch.randn(batch, 3, size, size)
        seconds = interleaved_latency(
            {name: inference(model.backbone, x) for name, model in models.items()}, repeats)
        for name in models:
            rows[name]['eval_ms'][batch] = seconds[name] * 1e3
    return list(rows.values())


def benchmark_classifiers(attentions: dict, batch_sizes, repeats: int, train_batch=None,
                          size: int = 224, width: int = 64) -> list:
    """One row per model of ``attentions`` (``{label: attention config or None}``):
    ``dict(model=label, params=..., gflops=per image, eval_ms={batch: ms},
    train_ms={train_batch: ms})``; no training step when ``train_batch`` is 0 or None."""
    models = {name: build_classifier(attention, width).eval()
              for name, attention in attentions.items()}
    rows = {row['model']: dict(row, train_ms={})
            for row in inference_rows(models, batch_sizes, repeats, size)}
    if train_batch:
        x = torch.randn(train_batch, 3, size, size)
        labels = torch.randint(0, 1000, (train_batch, ))
        for model in models.values():
            model.train()
        seconds = interleaved_latency(
            {name: training_step(model, x, labels) for name, model in models.items()},
            max(3, repeats // 2), warmup=1)
        for name in models:
            rows[name]['train_ms'][train_batch] = seconds[name] * 1e3
    del models
    gc.collect()
    return list(rows.values())


def table(rows) -> tuple:
    """``(header, lines)`` of the comparison, cells as strings; ratios are to the row of
    ``plain`` (which comes first)."""
    plain = next(r for r in rows if r['model'] == REFERENCE)
    header = ['block', 'params (M)', 'GFLOPs/img']
    for kind in ('eval', 'train'):
        for batch in plain[f'{kind}_ms']:
            header += [f'{kind} b={batch} ms', 'x plain']
    lines = []
    for r in sorted(rows, key=lambda r: r['model'] != REFERENCE):  # stable: plain, then given
        cells = [r['model'], f'{r["params"] / 1e6:.2f}', f'{r["gflops"]:.3f}']
        for kind in ('eval', 'train'):
            for batch, ms in r[f'{kind}_ms'].items():
                cells += [f'{ms:.1f}', f'{ms / plain[f"{kind}_ms"][batch]:.3f}']
        lines.append(cells)
    return header, lines


def overhead_verdicts(rows) -> list:
    """The SE / SASE inference overhead lines (issue 3's goal), if both are in ``rows``."""
    by_name = {short_name(r['model']): r for r in rows}
    if not {'se', 'sase', REFERENCE} <= set(by_name):
        return []
    plain, se_row, sase_row = by_name[REFERENCE], by_name['se'], by_name['sase']
    verdicts = []
    for batch, plain_ms in plain['eval_ms'].items():
        se = se_row['eval_ms'][batch] / plain_ms - 1
        sase = sase_row['eval_ms'][batch] / plain_ms - 1
        line = f'batch {batch}: inference overhead SE {se * 100:+.1f}%, SASE {sase * 100:+.1f}%'
        if se <= 0 or sase <= 0:
            slower = 'SE' if se <= 0 else 'SASE'
            verdicts.append(line + f' -> {slower} shows no overhead in this run (too noisy to '
                            'compare)')
            continue
        verdict = 'meets' if sase <= 1.5 * se else 'misses'
        verdicts.append(line + f' -> SASE/SE overhead ratio {sase / se:.2f} ({verdict} the '
                        '<= 1.5 goal)')
    return verdicts


def print_table(rows, title, markdown=False):
    header, lines = table(rows)
    print(f'\n{title}')
    widths = [max(len(cell) for cell in column) for column in zip(header, *lines)]

    def aligned(cells):  # the block's name to the left, numbers to the right
        return '  '.join([cells[0].ljust(widths[0])] +
                         [c.rjust(w) for c, w in zip(cells[1:], widths[1:])])

    print(aligned(header))
    print('-' * len(aligned(header)))
    for cells in lines:
        print(aligned(cells))
    if markdown:
        print()
        header = [cell.replace('x plain', '× plain') for cell in header]
        for cells in [header, ['---'] * len(header)] + lines:
            print('| ' + ' | '.join(cells) + ' |')
    for line in overhead_verdicts(rows):
        print(line)


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


def parse_args(argv=None):
    from mmsase.models.plugins.factory import SHORT_NAMES, UnknownBlockError
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--blocks', nargs='+', default=list(SHORT_NAMES), metavar='BLOCK',
                        help='attention blocks to compare with plain ResNet-50 (always '
                        'included): short names or registry names; default: all of '
                        f'{" ".join(SHORT_NAMES)}')
    parser.add_argument('--batch-sizes', type=int, nargs='+', default=[1, 8])
    parser.add_argument('--train-batch-size', type=int, default=None,
                        help='batch of the timed training step (default: the largest of '
                        '--batch-sizes; 0: no training step)')
    parser.add_argument('--repeats', type=int, default=10)
    parser.add_argument('--threads', type=int, default=None)
    parser.add_argument('--markdown', action='store_true',
                        help='also print the table in Markdown')
    parser.add_argument('--width', type=int, default=64,
                        help='channels of the stem and first stage: 64 is ResNet-50, less only '
                        'for quick checks')
    parser.add_argument('--image-size', type=int, default=224)
    parser.add_argument('--detection', action='store_true',
                        help='also time Faster R-CNN R50 plain vs SASE')
    parser.add_argument('--detection-only', action='store_true')
    args = parser.parse_args(argv)
    try:
        args.blocks = parse_blocks(args.blocks)
    except UnknownBlockError as error:
        parser.error(str(error))
    if args.train_batch_size is None:
        args.train_batch_size = max(args.batch_sizes)
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f'torch {torch.__version__}, {torch.get_num_threads()} threads')
    if not args.detection_only:
        attentions = {REFERENCE: None}
        print('attention settings:')
        for block in args.blocks:
            attentions[block], source = attention_config(block)
            print(f'  {block:<10}{attentions[block]}  ({source})')
        rows = benchmark_classifiers(attentions, args.batch_sizes, args.repeats,
                                     args.train_batch_size, args.image_size, args.width)
        width = '' if args.width == 64 else f', width {args.width}'
        print_table(rows, f'ResNet-50{width} at {args.image_size}x{args.image_size} '
                    '(1000 classes)', args.markdown)
    if args.detection or args.detection_only:
        benchmark_detectors([(800, 1333), (512, 512)], max(3, args.repeats // 3))


if __name__ == '__main__':
    main()
