"""Write a small synthetic data set in a real on-disk format.

    python tools/generate_data.py coco     data/coco_synth     [--num-train 200] [--num-val 50]
    python tools/generate_data.py cifar10  data/cifar10_synth  [--num-train 1000] [--num-val 200]
    python tools/generate_data.py cifar100 data/cifar100_synth [--num-train 5000] [--num-test 1000]
    python tools/generate_data.py imagenet data/imagenet_synth [--num-train 20] [--num-val 5]
    python tools/generate_data.py cluttered-digits data/cluttered_digits [--images-per-digit 4]

Options: ``--image-size H W`` (coco, imagenet), ``--max-image-size H W`` (per-image sizes
drawn between the two), ``--num-classes N`` (coco, imagenet), ``--seed S``. For imagenet
``--num-train`` / ``--num-val`` count images per class; for cifar10 and cifar100
``--num-val`` (alias ``--num-test``) is the test split. The script prints where it wrote
what, and the dataset config that loads it. See :mod:`mmsase.datasets.synthetic` for the
formats.

``cluttered-digits`` writes :class:`mmsase.ClutteredDigits` (scikit-learn's handwritten
digits at random places among clutter, :mod:`mmsase.datasets.cluttered_digits`) in the
CIFAR-10 layout: both splits of the underlying digits (1437 train / 360 test) times
``--images-per-digit`` (default 4); ``--digit-size``, ``--num-clutter``,
``--fragment-size`` and ``--seed`` are the data set's arguments (defaults: the data set's).
"""
import argparse
import os.path as osp

from mmsase.datasets.cluttered_digits import write_cluttered_digits
from mmsase.datasets.synthetic import (SHAPES, classification_class_names, write_cifar10,
                                       write_cifar100, write_coco_dataset,
                                       write_imagenet_folder)

DEFAULTS = {  # kind: (num_train, num_val, image_size, num_classes)
    'coco': (200, 50, (128, 128), 3),
    'cifar10': (1000, 200, (32, 32), 10),
    'cifar100': (5000, 1000, (32, 32), 100),
    'imagenet': (20, 5, (96, 96), 10),
}
#: The kind that writes mmsase.ClutteredDigits, and its own options (argparse dests).
CLUTTERED = 'cluttered-digits'
CLUTTERED_OPTIONS = ('digit_size', 'num_clutter', 'fragment_size', 'images_per_digit')


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Write a small synthetic data set (coloured shapes) in the COCO, '
        'CIFAR-10, CIFAR-100 or ImageNet on-disk format, or the cluttered digits '
        '(mmsase.ClutteredDigits) in the CIFAR-10 format.')
    parser.add_argument('kind', choices=sorted([*DEFAULTS, CLUTTERED]),
                        help='format to write')
    parser.add_argument('out_dir', help='output folder (the data_root of the config)')
    parser.add_argument('--num-train', type=int, help='training images (imagenet: per '
                        'class); default: coco 200, cifar10 1000, cifar100 5000, imagenet 20')
    parser.add_argument('--num-val', '--num-test', dest='num_val', type=int,
                        help='validation images (cifar10, cifar100: test images; imagenet: '
                        'per class); default: coco 50, cifar10 200, cifar100 1000, imagenet 5')
    parser.add_argument('--image-size', type=int, nargs=2, metavar=('H', 'W'),
                        help='image height and width (coco default 128 128, imagenet 96 '
                        '96; cifar10 and cifar100 are always 32 32)')
    parser.add_argument('--max-image-size', type=int, nargs=2, metavar=('H', 'W'),
                        help='draw each image\'s size between --image-size and this '
                        '(inclusive), e.g. for odd sizes')
    parser.add_argument('--num-classes', type=int, help=f'number of classes (coco: 1..'
                        f'{len(SHAPES)}, default 3; imagenet: 1..64, default 10)')
    parser.add_argument('--seed', type=int, default=0, help='random seed (default 0)')
    cluttered = parser.add_argument_group(
        CLUTTERED, 'arguments of mmsase.ClutteredDigits (defaults: its defaults)')
    cluttered.add_argument('--digit-size', type=int, help='side of the upsampled digit (16)')
    cluttered.add_argument('--num-clutter', type=int, help='clutter fragments per image (6)')
    cluttered.add_argument('--fragment-size', type=int, help='side of a fragment (8)')
    cluttered.add_argument('--images-per-digit', type=int,
                           help='images drawn from each source digit (4)')
    args = parser.parse_args(argv)
    given = [f'--{name.replace("_", "-")}' for name in CLUTTERED_OPTIONS
             if getattr(args, name) is not None]
    if args.kind == CLUTTERED:
        others = [flag for flag, value in (('--num-train', args.num_train),
                                           ('--num-val', args.num_val),
                                           ('--image-size', args.image_size),
                                           ('--max-image-size', args.max_image_size),
                                           ('--num-classes', args.num_classes))
                  if value is not None]
        if others:
            parser.error(f'{CLUTTERED} has 32x32 images of 10 classes, one per digit of the '
                         'digits\' splits (1437 train / 360 test) times --images-per-digit: '
                         f'{", ".join(others)} cannot be used')
        return args
    if given:
        parser.error(f'{", ".join(given)} only apply to {CLUTTERED}, not {args.kind}')
    if args.kind.startswith('cifar') and (args.image_size or args.max_image_size
                                          or args.num_classes):
        parser.error(f'{args.kind} has fixed 32x32 images and {DEFAULTS[args.kind][3]} '
                     'classes: --image-size, --max-image-size and --num-classes do not apply')
    if args.max_image_size and not args.image_size:
        parser.error('--max-image-size needs --image-size (the smallest size)')
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.kind == CLUTTERED:
        write_cluttered(args)
        return
    num_train, num_val, size, num_classes = DEFAULTS[args.kind]
    num_train = num_train if args.num_train is None else args.num_train
    num_val = num_val if args.num_val is None else args.num_val
    num_classes = num_classes if args.num_classes is None else args.num_classes
    size = tuple(args.image_size or size)
    if args.max_image_size:
        size = tuple(zip(size, args.max_image_size))  # ((h_lo, h_hi), (w_lo, w_hi))
    root = args.out_dir

    if args.kind == 'coco':
        paths = write_coco_dataset(root, num_train=num_train, num_val=num_val,
                                   image_size=size, num_classes=num_classes, seed=args.seed)
        print(f'Wrote a COCO-format set of {num_classes} shape classes '
              f'{SHAPES[:num_classes]} to {osp.abspath(root)}:\n'
              f'  {num_train} training images in {paths["train_img_dir"]}, annotations '
              f'{paths["train_ann_file"]}\n'
              f'  {num_val} validation images in {paths["val_img_dir"]}, annotations '
              f'{paths["val_ann_file"]}\n'
              'Load it with:\n'
              f"  dict(type='CocoDataset', data_root='{root.rstrip('/')}/',\n"
              f"       metainfo=dict(classes={SHAPES[:num_classes]}),\n"
              "       ann_file='annotations/instances_train.json', "
              "data_prefix=dict(img='train/'))")
    elif args.kind == 'cifar10':
        paths = write_cifar10(root, num_train=num_train, num_test=num_val, seed=args.seed)
        print(f'Wrote a CIFAR-10-format set to {paths["folder"]}: {num_train} training '
              f'images in data_batch_1..5, {num_val} test images in test_batch.\n'
              'Load it with (the md5 sums cannot match the official release):\n'
              f"  dict(type='mmsase.CIFAR10', data_root='{root}', split='train', "
              'verify_md5=False)')
    elif args.kind == 'cifar100':
        paths = write_cifar100(root, num_train=num_train, num_test=num_val, seed=args.seed)
        print(f'Wrote a CIFAR-100-format set to {paths["folder"]}: {num_train} training '
              f'images in train, {num_val} test images in test, fine (100) and coarse (20) '
              'labels, class names in meta.\n'
              'Load it with (the md5 sums cannot match the official release):\n'
              f"  dict(type='mmsase.CIFAR100', data_root='{root}', split='train', "
              "verify_md5=False)  # label_type='coarse' for the 20 superclasses")
    else:
        paths = write_imagenet_folder(root, num_classes=num_classes,
                                      images_per_class=num_train, image_size=size,
                                      seed=args.seed, val_images_per_class=num_val)
        print(f'Wrote an ImageNet-style set of {num_classes} classes '
              f'({", ".join(classification_class_names(num_classes)[:4])}, ...) to '
              f'{osp.abspath(root)}:\n'
              f'  {num_train} training and {num_val} validation images per class in '
              f'{paths["train_dir"]} and {paths["val_dir"]}\n'
              f'  lists {paths["train_ann_file"]}, {paths["val_ann_file"]}; class names '
              f'{paths["classes_file"]}\n'
              'Load it with:\n'
              f"  dict(type='ImageNet', data_root='{root}', split='train',\n"
              f"       classes='{paths['classes_file']}')")


def write_cluttered(args: argparse.Namespace) -> None:
    """Write mmsase.ClutteredDigits in the CIFAR-10 layout and say how to load it."""
    options = {name: getattr(args, name) for name in CLUTTERED_OPTIONS
               if getattr(args, name) is not None}
    paths = write_cluttered_digits(args.out_dir, seed=args.seed, **options)
    shown = ', '.join(f'{k}={v}' for k, v in dict(options, seed=args.seed).items())
    print(f'Wrote the cluttered digits ({shown}) in the CIFAR-10 format to '
          f'{paths["folder"]}: {paths["num_train"]} training images in data_batch_1..5, '
          f'{paths["num_test"]} test images in test_batch; the same images as\n'
          f"  dict(type='mmsase.ClutteredDigits', split='train', {shown})\n"
          "Load it with (metainfo=dict(classes=None): class names '0'..'9' from "
          'batches.meta):\n'
          f"  dict(type='mmsase.CIFAR10', data_root='{args.out_dir}', split='train', "
          'verify_md5=False, metainfo=dict(classes=None))')


if __name__ == '__main__':
    main()
