"""Draw Grad-CAM maps of one or several classifiers side by side on the same images.

    python tools/visualization/vis_cam.py CONFIG CHECKPOINT IMAGE [IMAGE ...]
        [--model CONFIG CHECKPOINT]... [--names NAME ...] [--target-layers LAYER ...]
        [--target-class N] [--method gradcam] [--image-size H [W]] [--genotype FILE]
        [--out cam.png]

The first model is given by the positional CONFIG CHECKPOINT; each ``--model`` adds a
column (the paper's figure: plain vs SE vs SASE). Every image goes through each config's
test pipeline and data preprocessor. The PNG is a grid: one row per image, the image
first, then one column per model with the map over the image, titled with the predicted
class (and its probability). The default target layer is the backbone's last stage
(``backbone.layer4`` of a ResNet-50, ``backbone.layer3`` of a CIFAR ResNet).
"""
import argparse
import io
import os.path as osp

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from mmengine.config import Config

from mmsase.models.sase.genotype import load_genotype
from mmsase.utils.atomic_io import atomic_write
from mmsase.utils.launch import run_cli, set_genotype
from mmsase.visualization.cam import (CAM_METHODS, build_classifier, class_names,
                                      compute_cam, default_target_layer, get_module,
                                      overlay, prepare_image)

#: Size of one grid cell in inches; the PNG is drawn at :data:`DPI`.
CELL_INCHES = 2.4
DPI = 100


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='config of the first model')
    parser.add_argument('checkpoint', help='checkpoint of the first model')
    parser.add_argument('images', nargs='+', help='image files (any format OpenCV reads)')
    parser.add_argument('--model', nargs=2, action='append', default=[],
                        metavar=('CONFIG', 'CHECKPOINT'),
                        help='another model, drawn in the next column (repeatable)')
    parser.add_argument('--names', nargs='+',
                        help='column titles, one per model (default: the config names)')
    parser.add_argument('--target-layers', nargs='+',
                        help='dotted module paths whose maps are averaged, e.g. '
                        'backbone.layer4 (default: the last stage of the backbone)')
    parser.add_argument('--target-class', type=int,
                        help='class index to explain (default: each model\'s prediction)')
    parser.add_argument('--method', default='gradcam', choices=list(CAM_METHODS),
                        help='CAM method of the grad-cam package')
    parser.add_argument('--image-size', type=int, nargs='+', metavar='SIZE',
                        help='resize images to H [W] before the test pipeline (for '
                        'pipelines without a resize, e.g. 32 for the digits configs)')
    parser.add_argument('--genotype',
                        help='genotype JSON for the SASE blocks of every model that has '
                        'some (as tools/train.py --genotype); other models are left alone')
    parser.add_argument('--device', default='cpu', help='torch device (cpu, cuda, ...)')
    parser.add_argument('--out', default='cam.png', help='PNG to write (default: cam.png)')
    args = parser.parse_args(argv)
    if args.image_size is not None and len(args.image_size) not in (1, 2):
        parser.error('--image-size takes H or H W')
    return args


def has_sase_block(node) -> bool:
    """Whether a model config holds a ``SASE`` block anywhere."""
    if isinstance(node, dict):
        kind = node.get('type', '')
        name = kind.__name__ if isinstance(kind, type) else str(kind).split('.')[-1]
        return name == 'SASE' or any(has_sase_block(v) for v in node.values())
    if isinstance(node, (list, tuple)):
        return any(has_sase_block(v) for v in node)
    return False


def draw_grid(images, columns, cells) -> bytes:
    """PNG bytes of the grid: ``images`` (RGB float, one per row), ``columns`` (titles of
    the model columns), ``cells[row][col] = (overlay RGB uint8, title)``."""
    rows, cols = len(images), 1 + len(columns)
    figure = Figure(figsize=(cols * CELL_INCHES, rows * CELL_INCHES), dpi=DPI)
    FigureCanvasAgg(figure)
    for row, image in enumerate(images):
        panels = [(image, 'image' if row else 'image\n')]
        panels += [(rgb, f'{columns[col]}\n{title}' if row == 0 else title)
                   for col, (rgb, title) in enumerate(cells[row])]
        for col, (picture, title) in enumerate(panels):
            axes = figure.add_subplot(rows, cols, row * cols + col + 1)
            axes.imshow(picture, interpolation='bilinear')
            axes.set_title(title, fontsize=9)
            axes.set_axis_off()
    figure.subplots_adjust(left=0.02, right=0.98, bottom=0.02, top=1 - 0.3 / rows,
                           wspace=0.05, hspace=0.3)
    buffer = io.BytesIO()
    figure.savefig(buffer, format='png')
    return buffer.getvalue()


def main(argv=None):
    args = parse_args(argv)
    models = [(args.config, args.checkpoint)] + [tuple(m) for m in args.model]
    names = args.names or [osp.splitext(osp.basename(c))[0] for c, _ in models]
    if len(names) != len(models):
        raise ValueError(f'--names gives {len(names)} names for {len(models)} models')
    for image in args.images:
        if not osp.isfile(image):
            raise FileNotFoundError(f'image {image!r} does not exist')
    size = None
    if args.image_size:
        size = (args.image_size[0], args.image_size[-1])

    if args.genotype:
        load_genotype(args.genotype)  # a bad file fails before anything is built

    shown, cells = {}, [[] for _ in args.images]
    for name, (config, checkpoint) in zip(names, models):
        if not osp.isfile(config):
            raise FileNotFoundError(f'config file {config!r} does not exist')
        cfg = Config.fromfile(config)
        if args.genotype and has_sase_block(cfg.model):
            set_genotype(cfg, args.genotype)
        model, cfg = build_classifier(cfg, checkpoint, args.device)
        paths = args.target_layers or [default_target_layer(model)]
        try:
            layers = [get_module(model, path) for path in paths]
        except ValueError as e:
            raise ValueError(f'{config}: {e}') from e
        classes = class_names(cfg)
        for row, path in enumerate(args.images):
            sample = prepare_image(model, cfg, path, size)
            shown.setdefault(row, sample.image)
            result = compute_cam(model, sample.inputs.to(args.device), layers,
                                 args.target_class, args.method)
            predicted = int(result.scores.argmax())
            label = classes[predicted] if classes and predicted < len(classes) \
                else str(predicted)
            title = f'pred {label.split(",")[0][:20]} ({float(result.scores[predicted]):.2f})'
            if args.target_class is not None:
                title += f'\nmap of class {args.target_class}'
            # over the model's own input: configs may resize differently
            cells[row].append((overlay(sample.image, result.cam), title))
        print(f'{name}: {args.method} of {", ".join(paths)} on {len(args.images)} image(s)')
    atomic_write(args.out, draw_grid([shown[r] for r in range(len(args.images))],
                                     names, cells))
    print(f'written to {args.out}')


if __name__ == '__main__':
    run_cli(main)
