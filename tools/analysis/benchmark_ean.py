"""What EAN buys: parameters, FLOPs and CPU latency of ResNet-50 plain, with a block on every
residual block, and with one block per stage shared by a connection code's blocks, in one run.

    python tools/analysis/benchmark_ean.py                                  # SGE, authors' code
    python tools/analysis/benchmark_ean.py --block se \
        --code configs/ean/codes/resnet50_dia_authors.json
    python tools/analysis/benchmark_ean.py --block sge --code 100-1011-010011-011 --markdown

Rows (``mmsase.AttentionResNet``, 1000-class head, random weights, float32, eval mode):

* ``plain``: ResNet-50 without attention;
* ``<block> all``: the block on every residual block, one module each (e.g. SE-ResNet-50);
* ``<block> shared all``: EAN's sharing, one module per stage, every block plugged;
* ``<block> shared <code>``: EAN's network, the blocks of ``--code`` plugged (any form of
  :meth:`mmsase.models.ean.ConnectionCode.parse`, a JSON file included; leftmost bit = first
  block; default the authors' searched SGE code ``1001011010011011``).

Columns: params (M) of the classifier; GFLOPs/img of the backbone's forward as counted by
``torch.utils.flop_counter`` (convolutions and matrix products only: the gating of SGE or SE is
element-wise work, so read the latency); eval b=N: median milliseconds of the backbone's forward
at each batch size (``--repeats`` calls, the models timed round-robin); "x plain": over plain's
time in the same run. The timing helpers are tools/analysis/benchmark.py's.
"""
import argparse
import os.path as osp
import sys

import torch

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from benchmark import attention_config, inference_rows, short_name  # noqa: E402

AUTHORS_SGE_CODE = '1001011010011011'
STAGE_BLOCKS = (3, 4, 6, 3)


def build_classifier(attention=None, width: int = 64, **backbone):
    """A ResNet-50 classifier (``width``: the stem's and first stage's channels, 64 in
    ResNet-50) with ``attention`` and further backbone arguments (``attention_shared``,
    ``connection_code``)."""
    from mmpretrain.models import ImageClassifier

    import mmsase.models  # noqa: F401
    return ImageClassifier(
        backbone=dict(type='mmsase.AttentionResNet', depth=50, attention=attention,
                      stem_channels=width, base_channels=width, **backbone),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=1000, in_channels=32 * width))


def variants(block: str, attention: dict, code) -> dict:
    """``{label: backbone arguments}`` of the four networks compared."""
    name = short_name(block)
    return {
        'plain': dict(),
        f'{name} all': dict(attention=attention),
        f'{name} shared all': dict(attention=attention, attention_shared=True),
        f'{name} shared {code.to_string("-")}': dict(attention=attention, attention_shared=True,
                                                     connection_code=code.to_string()),
    }


def benchmark(models: dict, batch_sizes, repeats: int, size: int = 224) -> list:
    """One row per model: ``dict(model, params, gflops, eval_ms={batch: ms})``."""
    return inference_rows(models, batch_sizes, repeats, size)


def table(rows) -> tuple:
    """``(header, lines)``, cells as strings; ratios to the first row (plain)."""
    plain = rows[0]
    header = ['network', 'params (M)', 'GFLOPs/img']
    for batch in plain['eval_ms']:
        header += [f'eval b={batch} ms', 'x plain']
    lines = []
    for r in rows:
        cells = [r['model'], f'{r["params"] / 1e6:.3f}', f'{r["gflops"]:.3f}']
        for batch, ms in r['eval_ms'].items():
            cells += [f'{ms:.1f}', f'{ms / plain["eval_ms"][batch]:.3f}']
        lines.append(cells)
    return header, lines


def print_table(rows, title: str, markdown: bool = False) -> None:
    header, lines = table(rows)
    widths = [max(len(cell) for cell in column) for column in zip(header, *lines)]

    def aligned(cells):
        return '  '.join([cells[0].ljust(widths[0])] +
                         [c.rjust(w) for c, w in zip(cells[1:], widths[1:])])

    print(f'\n{title}\n{aligned(header)}\n' + '-' * len(aligned(header)))
    for cells in lines:
        print(aligned(cells))
    if markdown:
        print()
        for cells in [header, ['---'] * len(header)] + lines:
            print('| ' + ' | '.join(c.replace('x plain', '× plain') for c in cells) + ' |')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--block', default='sge', help='the shared block (default sge)')
    parser.add_argument('--code', default=AUTHORS_SGE_CODE,
                        help='connection code or code JSON (default the authors\' SGE code)')
    parser.add_argument('--batch-sizes', type=int, nargs='+', default=[1, 8])
    parser.add_argument('--repeats', type=int, default=10)
    parser.add_argument('--threads', type=int, default=None)
    parser.add_argument('--width', type=int, default=64,
                        help='ResNet-50\'s base width (64; smaller only for quick checks)')
    parser.add_argument('--image-size', type=int, default=224)
    parser.add_argument('--markdown', action='store_true', help='also print a Markdown table')
    args = parser.parse_args(argv)
    from mmsase.models.ean import ConnectionCode
    from mmsase.models.plugins.factory import UnknownBlockError, resolve_block
    try:
        resolve_block(args.block)
        args.code = ConnectionCode.parse(args.code, STAGE_BLOCKS)
    except (UnknownBlockError, ValueError, FileNotFoundError) as error:
        parser.error(str(error))
    return args


def main(argv=None) -> list:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    attention, source = attention_config(args.block)
    print(f'torch {torch.__version__}, {torch.get_num_threads()} threads; {args.block}: '
          f'{attention} ({source}); code {args.code.to_string("-")} = {args.code.integers}, '
          f'{args.code.num_plugged}/{args.code.num_blocks} plugged')
    models = {label: build_classifier(width=args.width, **kwargs).eval()
              for label, kwargs in variants(args.block, attention, args.code).items()}
    rows = benchmark(models, args.batch_sizes, args.repeats, args.image_size)
    width = '' if args.width == 64 else f', width {args.width}'
    print_table(rows, f'ResNet-50{width} at {args.image_size}x{args.image_size} (1000 classes)',
                args.markdown)
    return rows


if __name__ == '__main__':
    main()
