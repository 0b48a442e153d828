"""``ClutteredDigits``: a handwritten digit at a random place among clutter.

The cluttered, translated digits of Mnih et al., "Recurrent Models of Visual Attention"
(NeurIPS 2014, https://arxiv.org/abs/1406.6247, Sec. 4.1) -- the classic testbed of visual
attention, used again for the Spatial Transformer Networks of Jaderberg et al. (NeurIPS
2015, https://arxiv.org/abs/1506.02025). There, an MNIST digit is put at a random place of a
larger black canvas (60x60) together with random 8x8 pieces of other digits (4 of them), so
a classifier must find the digit and ignore look-alike strokes around it.

Here the digits are scikit-learn's real handwritten digits (``sklearn.datasets.load_digits``,
8x8, bundled with scikit-learn: no download), and the images are 32x32 RGB by default, so
the CIFAR-sized models and pipelines of :class:`~mmsase.datasets.Digits32` run unchanged::

    train_dataloader = dict(dataset=dict(
        type='mmsase.ClutteredDigits', split='train',
        pipeline=[dict(type='mmpretrain.PackInputs')]))

:func:`make_cluttered_digits` draws the arrays, :class:`ClutteredDigits` serves them as an
mmpretrain data set, and :func:`write_cluttered_digits` writes them in the CIFAR-10 "python
version" layout (``tools/generate_data.py cluttered-digits DATA_ROOT``).
"""
import os
import os.path as osp
from typing import Dict, List, Optional, Tuple

import numpy as np
from mmpretrain.datasets import BaseDataset
from PIL import Image

from mmsase.registry import DATASETS
from .digits import digits_split_indices
from .synthetic import _cifar_rows, _dump_cifar_pickle

__all__ = ['ClutteredDigits', 'make_cluttered_digits', 'upsampled_digits',
           'write_cluttered_digits']

#: Class names, in label order.
DIGIT_CLASSES: Tuple[str, ...] = tuple(str(i) for i in range(10))


def _check_int(name: str, value, low: int, high: Optional[int] = None) -> int:
    """``value`` as an int; a ``ValueError`` naming ``name`` unless it is an int in
    ``low..high``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low \
            or (high is not None and value > high):
        bounds = f'in {low}..{high}' if high is not None else f'>= {low}'
        raise ValueError(f'{name} must be an int {bounds}, got {value!r}')
    return int(value)


def upsampled_digits(digit_size: int = 16) -> Tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1797 handwritten digits as ``digit_size`` x ``digit_size`` grey images.

    Each 8x8 image (values 0..16) is scaled to 0..255 (uint8) and resized with Pillow's
    bilinear filter, as :func:`~mmsase.datasets.load_digits_32` does: a white digit on black.

    Returns:
        tuple: ``digits`` uint8 ``(1797, digit_size, digit_size)`` and ``labels`` int64
        ``(1797,)`` in ``0..9``, in scikit-learn's order.
    """
    from sklearn.datasets import load_digits  # scikit-learn is only needed here

    size = _check_int('digit_size', digit_size, 1)
    digits = load_digits()
    small = np.clip(digits.images * (255 / 16), 0, 255).astype(np.uint8)
    big = np.stack([
        np.asarray(Image.fromarray(img).resize((size, size), Image.Resampling.BILINEAR))
        for img in small
    ])
    return big, digits.target.astype(np.int64)


def _checked_options(split: str, canvas_size: int, digit_size: int, num_clutter: int,
                     fragment_size: int, images_per_digit: int, seed: int, num_test: int,
                     split_seed: int) -> dict:
    """The arguments of :func:`make_cluttered_digits`, checked, sizes as ``int``."""
    canvas_size = _check_int('canvas_size', canvas_size, 1)
    digit_size = _check_int('digit_size', digit_size, 1, canvas_size)
    options = dict(
        split=split, canvas_size=canvas_size, digit_size=digit_size,
        num_clutter=_check_int('num_clutter', num_clutter, 0),
        fragment_size=_check_int('fragment_size', fragment_size, 1, digit_size),
        images_per_digit=_check_int('images_per_digit', images_per_digit, 1),
        seed=_check_int('seed', seed, 0), num_test=num_test,
        split_seed=_check_int('split_seed', split_seed, 0))
    indices = digits_split_indices(split, num_test, split_seed)  # checks split, num_test
    if options['num_clutter'] and len(indices) < 2:
        raise ValueError(f'clutter comes from other digits of the split, but the {split} '
                         f'split has {len(indices)} digit (num_test={num_test}); use '
                         'num_clutter=0 or a larger split')
    return options


def make_cluttered_digits(split: str = 'train',
                          canvas_size: int = 32,
                          digit_size: int = 16,
                          num_clutter: int = 6,
                          fragment_size: int = 8,
                          images_per_digit: int = 4,
                          seed: int = 0,
                          num_test: int = 360,
                          split_seed: int = 0) -> Dict[str, np.ndarray]:
    """Draw the cluttered-digit images of one split.

    The split's source digits are those of ``Digits32(split, num_test=num_test,
    seed=split_seed)`` (:func:`~mmsase.datasets.digits_split_indices`), upsampled to
    ``digit_size`` (:func:`upsampled_digits`). Image ``r * n + j`` (``n`` digits in the
    split, ``j < n``, copy ``r < images_per_digit``) is drawn as follows on a black
    ``canvas_size`` x ``canvas_size`` canvas:

    1. ``num_clutter`` fragments: each a ``fragment_size`` square cut at a uniformly random
       place of a uniformly random *other* digit of the same split (never the digit
       itself, never one of the other split), pasted at a uniformly random place;
    2. the digit ``j`` at a uniformly random place (its whole square inside the canvas).

    Pixels are combined by maximum (ink over black, as in Mnih et al.), so clutter never
    erases the digit and the canvas is the pixel-wise maximum of its pieces. The grey canvas
    is repeated in the 3 channels. Randomness: ``numpy.random.default_rng([seed, 0])`` for
    the train split and ``[seed, 1]`` for the test split.

    Args:
        split: ``'train'`` or ``'test'``.
        canvas_size: Side of the images (32 for the CIFAR models and CIFAR files).
        digit_size: Side of the upsampled digit, ``<= canvas_size``.
        num_clutter: Fragments per image, ``>= 0``.
        fragment_size: Side of a fragment, ``1..digit_size``.
        images_per_digit: Images drawn from each source digit of the split.
        seed: Seed of the drawing.
        num_test: Test split size of the underlying digits (as ``Digits32``).
        split_seed: Seed of the underlying digits' split (``Digits32``'s ``seed``).

    Returns:
        dict: for ``N = n * images_per_digit`` images, ``img`` uint8 ``(N, canvas_size,
        canvas_size, 3)``; ``gt_label`` int64 ``(N,)``; ``source_index`` int64 ``(N,)``, the
        digit's index in scikit-learn's order; ``position`` int64 ``(N, 2)``, the row and
        column of the digit's top-left pixel on the canvas; ``clutter`` int64
        ``(N, num_clutter, 5)``: per fragment its source digit (scikit-learn index), the
        row and column of its top-left pixel in that upsampled digit, and the row and
        column where it is pasted on the canvas.
    """
    checked = _checked_options(split, canvas_size, digit_size, num_clutter, fragment_size,
                               images_per_digit, seed, num_test, split_seed)
    canvas_size, digit_size, num_clutter, fragment_size, images_per_digit = (
        checked[key] for key in ('canvas_size', 'digit_size', 'num_clutter', 'fragment_size',
                                 'images_per_digit'))
    indices = digits_split_indices(split, num_test, split_seed)
    digits, labels = upsampled_digits(digit_size)
    digits = digits[indices]
    rng = np.random.default_rng([seed, 0 if split == 'train' else 1])

    n = len(indices)
    total = n * images_per_digit
    canvases = np.zeros((total, canvas_size, canvas_size), np.uint8)
    position = np.zeros((total, 2), np.int64)
    clutter = np.zeros((total, num_clutter, 5), np.int64)
    for i in range(total):
        j = i % n
        canvas = canvases[i]
        for k in range(num_clutter):
            other = int(rng.integers(n - 1))
            other += other >= j  # any digit of the split but j
            sy, sx = rng.integers(digit_size - fragment_size + 1, size=2)
            cy, cx = rng.integers(canvas_size - fragment_size + 1, size=2)
            window = canvas[cy:cy + fragment_size, cx:cx + fragment_size]
            np.maximum(window, digits[other, sy:sy + fragment_size, sx:sx + fragment_size],
                       out=window)
            clutter[i, k] = (indices[other], sy, sx, cy, cx)
        y, x = rng.integers(canvas_size - digit_size + 1, size=2)
        window = canvas[y:y + digit_size, x:x + digit_size]
        np.maximum(window, digits[j], out=window)
        position[i] = (y, x)
    source = np.tile(indices, images_per_digit)
    return dict(img=np.repeat(canvases[..., None], 3, axis=3), gt_label=labels[source],
                source_index=source, position=position, clutter=clutter)


@DATASETS.register_module()
class ClutteredDigits(BaseDataset):
    """scikit-learn's handwritten digits at random places among clutter (Mnih et al. 2014).

    A sample before the pipeline is ``dict(img=uint8 array (canvas_size, canvas_size, 3)
    RGB, gt_label=int, source_index=int, position=(row, col), clutter=int array
    (num_clutter, 5))`` -- ``img`` and ``gt_label`` as in ``Digits32`` and mmpretrain's
    ``CIFAR10``, the rest describe how it was drawn (see :func:`make_cluttered_digits`).
    Classes are ``'0'`` .. ``'9'``.

    The train and test splits use the source digits of ``Digits32``'s (same ``num_test``
    and ``split_seed``): no test digit, whole or as clutter, is seen in training.

    The defaults -- a 32x32 canvas, the digit at 16x16, 6 fragments of 8x8, 4 images per
    digit (5748 train / 1440 test images) -- were set so that plain CIFAR ResNet-20 in the
    6-epoch CPU demo (``configs/demo/cifar_resnet20_cluttered_digits.py``, about 1.5 minutes
    on 2 idle cores) is clearly worse than on the clean digits (98.3 % top-1) and stable
    across training seeds: 89.9 / 87.8 / 88.5 % for seeds 0 / 1 / 2. Harder settings sit on
    an edge where some runs fail to take off within 6 epochs (7 fragments: 88.1 / 82.4 /
    53.9 %; 8 fragments: 64.7 %), and one image per digit is too little data for 6 epochs
    (4 fragments of 5x5: 87.5 / 50.3 %).

    Args:
        split (str): ``'train'`` or ``'test'``.
        canvas_size (int): Side of the images. Defaults to 32.
        digit_size (int): Side of the upsampled digit. Defaults to 16.
        num_clutter (int): Fragments per image. Defaults to 6.
        fragment_size (int): Side of a fragment. Defaults to 8.
        images_per_digit (int): Images drawn from each source digit. Defaults to 4.
        seed (int): Seed of the drawing. Defaults to 0.
        num_test (int): Test split size of the underlying digits. Defaults to 360.
        split_seed (int): Seed of the underlying digits' split. Defaults to 0.
        **kwargs: Other arguments of mmpretrain's ``BaseDataset`` (``pipeline``,
            ``test_mode``, ``indices``, ``lazy_init``, ...).
    """

    METAINFO = {'classes': DIGIT_CLASSES}

    def __init__(self,
                 split: str = 'train',
                 canvas_size: int = 32,
                 digit_size: int = 16,
                 num_clutter: int = 6,
                 fragment_size: int = 8,
                 images_per_digit: int = 4,
                 seed: int = 0,
                 num_test: int = 360,
                 split_seed: int = 0,
                 **kwargs):
        self.options = _checked_options(split, canvas_size, digit_size, num_clutter,
                                        fragment_size, images_per_digit, seed, num_test,
                                        split_seed)
        self.split = split
        super().__init__(ann_file='', **kwargs)

    def load_data_list(self) -> List[dict]:
        """Draw this split's images (:func:`make_cluttered_digits`)."""
        arrays = make_cluttered_digits(**self.options)
        return [
            dict(img=img, gt_label=int(label), source_index=int(source),
                 position=tuple(int(v) for v in pos), clutter=clutter)
            for img, label, source, pos, clutter in zip(
                arrays['img'], arrays['gt_label'], arrays['source_index'],
                arrays['position'], arrays['clutter'])
        ]

    def extra_repr(self) -> List[str]:
        """Lines for ``repr``: how the images are drawn."""
        o = self.options
        return [f'Split: \t{o["split"]} (split seed {o["split_seed"]}, {o["num_test"]} test '
                'digits)',
                f'Canvas: \t{o["canvas_size"]}x{o["canvas_size"]}, digit {o["digit_size"]}x'
                f'{o["digit_size"]}, {o["num_clutter"]} fragments of {o["fragment_size"]}x'
                f'{o["fragment_size"]}, {o["images_per_digit"]} image(s) per digit, seed '
                f'{o["seed"]}']


def write_cluttered_digits(root: str, **options) -> dict:
    """Write both splits of :func:`make_cluttered_digits` in the CIFAR-10 "python version"
    layout (the format of :func:`~mmsase.datasets.write_cifar10`)::

        root/cifar-10-batches-py/
        ├── data_batch_1 ... data_batch_5   (the train split, in order, split evenly)
        ├── test_batch                      (the test split, in order)
        └── batches.meta                    (label_names '0' .. '9')

    so that ``mmsase.CIFAR10(data_root=root, split=..., verify_md5=False)`` loads the same
    images and labels, in the same order, as ``ClutteredDigits(split=..., **options)``.
    Pass ``metainfo=dict(classes=None)`` to take the class names ``'0'`` .. ``'9'`` from
    ``batches.meta`` instead of CIFAR-10's defaults. File names are
    ``digit_<label>_s_<sklearn index>_<copy>.png``.

    Args:
        root: Output folder (the dataset's ``data_root``).
        **options: Arguments of :func:`make_cluttered_digits` but ``split``;
            ``canvas_size`` must be 32 (the CIFAR format's size).

    Returns:
        dict: ``root``, ``folder`` (``root/cifar-10-batches-py``), ``meta_file``,
        ``test_file``, and ``num_train`` / ``num_test``, the number of images written.
    """
    if 'split' in options:
        raise ValueError('write_cluttered_digits writes both splits; do not pass split')
    if options.get('canvas_size', 32) != 32:
        raise ValueError('the CIFAR-10 format holds 32x32 images, got canvas_size='
                         f'{options["canvas_size"]!r}')
    folder = osp.join(root, 'cifar-10-batches-py')
    os.makedirs(folder, exist_ok=True)

    def entry(arrays: Dict[str, np.ndarray], rows: np.ndarray, batch_label: str) -> dict:
        """One batch file's dict: images ``rows`` of ``arrays``."""
        labels = arrays['gt_label'][rows]
        sources = arrays['source_index'][rows]
        copies = rows // len(np.unique(arrays['source_index']))  # image r * n + j: copy r
        return {
            'batch_label': batch_label,
            'labels': [int(label) for label in labels],
            'data': _cifar_rows(list(arrays['img'][rows])),
            'filenames': [f'digit_{label}_s_{source:04d}_{copy}.png'
                          for label, source, copy in zip(labels, sources, copies)],
        }

    paths = dict(root=root, folder=folder)
    train = make_cluttered_digits('train', **options)
    num_train = len(train['gt_label'])
    for b, rows in enumerate(np.array_split(np.arange(num_train), 5)):  # in order
        _dump_cifar_pickle(entry(train, rows, f'training batch {b + 1} of 5'),
                           osp.join(folder, f'data_batch_{b + 1}'))
    test = make_cluttered_digits('test', **options)
    paths['test_file'] = _dump_cifar_pickle(
        entry(test, np.arange(len(test['gt_label'])), 'testing batch 1 of 1'),
        osp.join(folder, 'test_batch'))
    paths['meta_file'] = _dump_cifar_pickle(
        dict(num_cases_per_batch=max(1, -(-num_train // 5)), label_names=list(DIGIT_CLASSES),
             num_vis=3072), osp.join(folder, 'batches.meta'))
    paths.update(num_train=num_train, num_test=len(test['gt_label']))
    return paths
