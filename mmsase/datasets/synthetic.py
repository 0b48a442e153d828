"""Writers of small, learnable data sets in the real on-disk formats.

Every writer produces files that the unmodified OpenMMLab dataset classes load:

* :func:`write_coco_dataset` -- COCO instances JSON + images, for ``mmdet.CocoDataset``.
* :func:`write_cifar10` -- the CIFAR-10 "python version" pickles, for ``mmpretrain.CIFAR10``.
* :func:`write_cifar100` -- the CIFAR-100 "python version" pickles (fine and coarse labels),
  for ``mmpretrain.CIFAR100``.
* :func:`write_imagenet_folder` -- an ImageNet-style folder tree with ``meta/*.txt``
  annotation lists, for ``mmpretrain.ImageNet`` / ``mmpretrain.CustomDataset``.

and :func:`load_digits_32` turns scikit-learn's bundled handwritten digits (a real data set
that ships inside scikit-learn, no download) into 32x32 RGB images.

The pictures are flat-coloured geometric shapes on a mildly noisy grey background, so that a
small network learns them in a few epochs. Shapes are polygons (a circle is a 24-gon),
painted by rasterising the polygon with ``pycocotools``, so the mask that COCO tools make
from an annotated polygon is exactly the drawn object's pixels. Coordinates follow the COCO
convention: pixel ``(x, y)`` covers ``[x, x + 1) x [y, y + 1)``, so the polygon
``[0, 0, 10, 0, 10, 10, 0, 10]`` covers exactly 10 x 10 pixels.

Generation is deterministic given ``seed``; each split draws from its own random stream, so
e.g. the validation images do not change when ``num_train`` changes.

Only numpy, Pillow and pycocotools are needed (scikit-learn for the digits). JPEGs are
written at quality 95 without chroma subsampling, so colours do not bleed across edges.
"""
import json
import numbers
import os
import os.path as osp
import pickle
import struct
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

__all__ = [
    'SHAPES', 'COLOURS', 'CIFAR10_CLASSES', 'CIFAR100_CLASSES', 'CIFAR100_COARSE_CLASSES',
    'CIFAR100_FINE_TO_COARSE', 'classification_class_names', 'write_coco_dataset',
    'write_cifar10', 'write_cifar100', 'write_imagenet_folder', 'load_digits_32'
]

#: Shape names, in class order. A COCO set with ``num_classes=k`` uses the first ``k``.
SHAPES: Tuple[str, ...] = ('circle', 'square', 'triangle', 'diamond', 'hexagon', 'star',
                           'cross', 'bar')

#: RGB colour of each colour name; shape ``SHAPES[i]`` of a COCO set is drawn in colour ``i``.
COLOURS: Dict[str, Tuple[int, int, int]] = {
    'red': (220, 40, 40),
    'green': (40, 175, 60),
    'blue': (40, 70, 225),
    'yellow': (235, 205, 30),
    'magenta': (205, 50, 205),
    'cyan': (40, 200, 210),
    'orange': (245, 130, 20),
    'purple': (110, 40, 165),
}
_COLOUR_NAMES = tuple(COLOURS)

#: Label names written to ``batches.meta`` (the official CIFAR-10 names, in label order).
CIFAR10_CLASSES: Tuple[str, ...] = ('airplane', 'automobile', 'bird', 'cat', 'deer', 'dog',
                                    'frog', 'horse', 'ship', 'truck')

# The 20 superclasses of CIFAR-100 and their 5 classes each, as listed on
# https://www.cs.toronto.edu/~kriz/cifar.html; label numbers are the alphabetical order of
# the names, as in the official ``meta`` file.
_CIFAR100_SUPERCLASSES: Dict[str, Tuple[str, ...]] = {
    'aquatic_mammals': ('beaver', 'dolphin', 'otter', 'seal', 'whale'),
    'fish': ('aquarium_fish', 'flatfish', 'ray', 'shark', 'trout'),
    'flowers': ('orchid', 'poppy', 'rose', 'sunflower', 'tulip'),
    'food_containers': ('bottle', 'bowl', 'can', 'cup', 'plate'),
    'fruit_and_vegetables': ('apple', 'mushroom', 'orange', 'pear', 'sweet_pepper'),
    'household_electrical_devices': ('clock', 'keyboard', 'lamp', 'telephone', 'television'),
    'household_furniture': ('bed', 'chair', 'couch', 'table', 'wardrobe'),
    'insects': ('bee', 'beetle', 'butterfly', 'caterpillar', 'cockroach'),
    'large_carnivores': ('bear', 'leopard', 'lion', 'tiger', 'wolf'),
    'large_man-made_outdoor_things': ('bridge', 'castle', 'house', 'road', 'skyscraper'),
    'large_natural_outdoor_scenes': ('cloud', 'forest', 'mountain', 'plain', 'sea'),
    'large_omnivores_and_herbivores': ('camel', 'cattle', 'chimpanzee', 'elephant',
                                       'kangaroo'),
    'medium_mammals': ('fox', 'porcupine', 'possum', 'raccoon', 'skunk'),
    'non-insect_invertebrates': ('crab', 'lobster', 'snail', 'spider', 'worm'),
    'people': ('baby', 'boy', 'girl', 'man', 'woman'),
    'reptiles': ('crocodile', 'dinosaur', 'lizard', 'snake', 'turtle'),
    'small_mammals': ('hamster', 'mouse', 'rabbit', 'shrew', 'squirrel'),
    'trees': ('maple_tree', 'oak_tree', 'palm_tree', 'pine_tree', 'willow_tree'),
    'vehicles_1': ('bicycle', 'bus', 'motorcycle', 'pickup_truck', 'train'),
    'vehicles_2': ('lawn_mower', 'rocket', 'streetcar', 'tank', 'tractor'),
}

#: The official CIFAR-100 fine label names (``meta['fine_label_names']``), label order.
CIFAR100_CLASSES: Tuple[str, ...] = tuple(
    sorted(name for names in _CIFAR100_SUPERCLASSES.values() for name in names))

#: The official CIFAR-100 coarse label names (``meta['coarse_label_names']``), label order.
CIFAR100_COARSE_CLASSES: Tuple[str, ...] = tuple(sorted(_CIFAR100_SUPERCLASSES))

#: ``CIFAR100_FINE_TO_COARSE[fine]`` is the coarse label of fine label ``fine``, as in the
#: official files' ``coarse_labels``.
CIFAR100_FINE_TO_COARSE: Tuple[int, ...] = tuple(
    next(c for c, name in enumerate(CIFAR100_COARSE_CLASSES)
         if fine in _CIFAR100_SUPERCLASSES[name]) for fine in CIFAR100_CLASSES)

#: Pillow ``save`` options; JPEG only: high quality, no chroma subsampling (4:4:4).
_SAVE_OPTIONS = dict(quality=95, subsampling=0)

ImageSize = Union[Tuple[int, int], Tuple[Tuple[int, int], Tuple[int, int]]]


# --------------------------------------------------------------------------- drawing


def _unit_polygon(shape: str) -> np.ndarray:
    """Vertices ``(K, 2)`` of ``shape`` as ``(x, y)`` around the origin, y pointing down."""
    def regular(n: int, start: float = -np.pi / 2) -> np.ndarray:
        angles = start + 2 * np.pi * np.arange(n) / n
        return np.stack([np.cos(angles), np.sin(angles)], axis=1)

    if shape == 'circle':
        return regular(24)
    if shape == 'square':
        return np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], dtype=float)
    if shape == 'triangle':
        return regular(3)  # pointing up
    if shape == 'diamond':
        return np.array([[0, -1], [0.65, 0], [0, 1], [-0.65, 0]])
    if shape == 'hexagon':
        return regular(6, start=0.0)
    if shape == 'star':
        radii = np.where(np.arange(10) % 2 == 0, 1.0, 0.45)
        return regular(10) * radii[:, None]
    if shape == 'cross':
        a, b = 0.33, 1.0
        return np.array([[-a, -b], [a, -b], [a, -a], [b, -a], [b, a], [a, a], [a, b],
                         [-a, b], [-a, a], [-b, a], [-b, -a], [-a, -a]])
    if shape == 'bar':
        return np.array([[-1, -0.35], [1, -0.35], [1, 0.35], [-1, 0.35]])
    raise ValueError(f'unknown shape {shape!r}; known: {SHAPES}')


def _scaled_polygon(shape: str, extent: float) -> np.ndarray:
    """Polygon ``(K, 2)`` of ``shape`` whose bounding box has its longer side = ``extent``,
    with the bounding box's top-left corner at the origin."""
    pts = _unit_polygon(shape)
    pts = pts - pts.min(axis=0)
    return pts * (extent / pts.max())


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A mildly textured grey background, ``(H, W, 3)`` uint8: a random grey level with a
    faint horizontal/vertical gradient and pixel noise."""
    level = rng.uniform(95, 165)
    ys = np.linspace(-1, 1, height)[:, None, None]
    xs = np.linspace(-1, 1, width)[None, :, None]
    gy, gx = rng.uniform(-12, 12, size=2)
    img = level + gy * ys + gx * xs + rng.normal(0, 5, size=(height, width, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def _jitter(rng: np.random.Generator, colour: Tuple[int, int, int]) -> Tuple[int, ...]:
    """``colour`` with every channel moved by up to +-15, so instances differ slightly."""
    return tuple(int(np.clip(c + rng.integers(-15, 16), 0, 255)) for c in colour)


def _draw_polygon(pixels: np.ndarray, polygon: np.ndarray, fill: Tuple[int, ...]) -> int:
    """Fill ``polygon`` ``(K, 2)`` (COCO coordinates) in ``pixels`` ``(H, W, 3)``, in place,
    and return the number of pixels filled.

    The polygon is rasterised by ``pycocotools`` -- the code that turns COCO polygons into
    training masks -- so the drawn pixels are exactly ``COCO.annToMask`` of the annotation.
    """
    height, width = pixels.shape[:2]
    rles = mask_utils.frPyObjects([polygon.reshape(-1).tolist()], height, width)
    mask = mask_utils.decode(mask_utils.merge(rles)).astype(bool)
    pixels[mask] = fill
    return int(mask.sum())


def _size_sampler(image_size: ImageSize):
    """A function ``rng -> (H, W)`` for a fixed ``(H, W)`` or a range ``((h_lo, h_hi),
    (w_lo, w_hi))`` (inclusive, sampled uniformly per image)."""
    height, width = image_size
    if isinstance(height, numbers.Integral) and isinstance(width, numbers.Integral):
        if height < 16 or width < 16:
            raise ValueError(f'image_size must be at least 16 x 16, got {image_size}')
        return lambda rng: (int(height), int(width))
    (h_lo, h_hi), (w_lo, w_hi) = height, width
    if min(h_lo, w_lo) < 16 or h_lo > h_hi or w_lo > w_hi:
        raise ValueError('image_size as a range must be ((h_lo, h_hi), (w_lo, w_hi)) with '
                         f'16 <= lo <= hi, got {image_size}')
    return lambda rng: (int(rng.integers(h_lo, h_hi + 1)), int(rng.integers(w_lo, w_hi + 1)))


def _overlaps(box: Sequence[float], boxes: List[Sequence[float]], margin: float) -> bool:
    """Whether ``box`` (x, y, w, h) comes within ``margin`` pixels of any of ``boxes``."""
    x, y, w, h = box
    for bx, by, bw, bh in boxes:
        if (x < bx + bw + margin and bx < x + w + margin and y < by + bh + margin
                and by < y + h + margin):
            return True
    return False


# --------------------------------------------------------------------------- COCO


def _coco_image(rng: np.random.Generator, height: int, width: int, num_classes: int,
                max_objects: int) -> Tuple[np.ndarray, List[dict]]:
    """Draw 1..``max_objects`` non-overlapping shapes.

    Returns:
        tuple: the image ``(H, W, 3)`` uint8 RGB and one dict per object with ``label``
        (0-based), ``polygon`` ``(K, 2)`` float, ``bbox`` ``[x, y, w, h]`` and ``area``
        (pixels).
    """
    pixels = _background(rng, height, width)
    side = min(height, width)
    objects: List[dict] = []
    wanted = int(rng.integers(1, max_objects + 1))
    for _ in range(30 * wanted):  # placement attempts
        if len(objects) == wanted:
            break
        label = int(rng.integers(num_classes))
        extent = rng.uniform(0.2, 0.5) * side
        polygon = _scaled_polygon(SHAPES[label], extent)
        w, h = polygon.max(axis=0)
        x0 = rng.uniform(1, width - 1 - w)
        y0 = rng.uniform(1, height - 1 - h)
        polygon = np.round(polygon + [x0, y0], 2)
        x_min, y_min = polygon.min(axis=0)
        x_max, y_max = polygon.max(axis=0)
        bbox = [x_min, y_min, x_max - x_min, y_max - y_min]
        if _overlaps(bbox, [o['bbox'] for o in objects], margin=2):
            continue
        area = _draw_polygon(pixels, polygon, _jitter(rng, COLOURS[_COLOUR_NAMES[label]]))
        objects.append(dict(label=label, polygon=polygon, bbox=bbox, area=area))
    return pixels, objects


def _write_coco_split(root: str, split: str, num_images: int, size_of, num_classes: int,
                      max_objects: int, ext: str, rng: np.random.Generator) -> str:
    """Write ``root/<split>/*.<ext>`` and ``root/annotations/instances_<split>.json``;
    return the annotation file's path."""
    img_dir = osp.join(root, split)
    os.makedirs(img_dir, exist_ok=True)
    images, annotations = [], []
    for image_id in range(1, num_images + 1):
        height, width = size_of(rng)
        pixels, objects = _coco_image(rng, height, width, num_classes, max_objects)
        file_name = f'{image_id:06d}.{ext}'
        Image.fromarray(pixels).save(osp.join(img_dir, file_name), **_SAVE_OPTIONS)
        images.append(dict(id=image_id, file_name=file_name, height=height, width=width))
        for obj in objects:
            annotations.append(
                dict(
                    id=len(annotations) + 1,
                    image_id=image_id,
                    category_id=obj['label'] + 1,
                    bbox=[round(float(v), 2) for v in obj['bbox']],
                    area=float(obj['area']),
                    iscrowd=0,
                    segmentation=[[float(v) for v in obj['polygon'].reshape(-1)]]))
    categories = [dict(id=i + 1, name=SHAPES[i], supercategory='shape')
                  for i in range(num_classes)]
    coco = dict(
        info=dict(description=f'mmsase synthetic shapes, {split} split', version='1.0'),
        licenses=[],
        images=images,
        annotations=annotations,
        categories=categories)
    ann_file = osp.join(root, 'annotations', f'instances_{split}.json')
    os.makedirs(osp.dirname(ann_file), exist_ok=True)
    with open(ann_file, 'w', encoding='utf-8') as f:
        json.dump(coco, f)
    return ann_file


def write_coco_dataset(root: str,
                       num_train: int = 16,
                       num_val: int = 8,
                       image_size: ImageSize = (128, 128),
                       num_classes: int = 3,
                       seed: int = 0,
                       max_objects: int = 3,
                       ext: str = 'jpg') -> Dict[str, str]:
    """Write a small COCO-format detection / instance segmentation set of coloured shapes.

    Layout (standard COCO; ``file_name`` is relative to the split's image folder)::

        root/
        ├── train/000001.jpg ...
        ├── val/000001.jpg ...
        └── annotations/
            ├── instances_train.json
            └── instances_val.json

    Each image has 1..``max_objects`` non-overlapping shapes whose bounding-box side is
    20-50 % of the image's shorter side. Class ``i`` (category id ``i + 1``) is
    ``SHAPES[i]`` drawn in colour ``list(COLOURS)[i]``: 'circle' red, 'square' green,
    'triangle' blue, 'diamond' yellow, ... Every annotation has ``bbox`` ``[x, y, w, h]``,
    ``area`` (pixels of the mask, as in COCO), ``iscrowd=0`` and ``segmentation`` as one polygon
    ``[[x1, y1, x2, y2, ...]]`` that is exactly the drawn shape.

    Args:
        root: Output folder (created if missing).
        num_train: Number of training images.
        num_val: Number of validation images.
        image_size: ``(H, W)`` for every image, or ``((h_lo, h_hi), (w_lo, w_hi))`` to draw
            each image's height and width uniformly from those inclusive ranges (gives odd
            sizes such as 97 x 131). At least 16 pixels each side.
        num_classes: Number of categories, 1..8 (the first ``num_classes`` of ``SHAPES``).
        seed: Random seed; the same arguments always give the same files.
        max_objects: Most objects in one image.
        ext: ``'jpg'`` (quality 95, no chroma subsampling) or ``'png'``.

    Returns:
        dict: ``root`` (as given), and ``train_img_dir``, ``val_img_dir``,
        ``train_ann_file``, ``val_ann_file`` joined onto it.
    """
    if not 1 <= num_classes <= len(SHAPES):
        raise ValueError(f'num_classes must be in 1..{len(SHAPES)}, got {num_classes}')
    if ext not in ('jpg', 'png'):
        raise ValueError(f"ext must be 'jpg' or 'png', got {ext!r}")
    if max_objects < 1:
        raise ValueError(f'max_objects must be >= 1, got {max_objects}')
    size_of = _size_sampler(image_size)
    paths = dict(root=root)
    for stream, (split, num) in enumerate((('train', num_train), ('val', num_val))):
        rng = np.random.default_rng([seed, stream])
        paths[f'{split}_ann_file'] = _write_coco_split(root, split, num, size_of,
                                                       num_classes, max_objects, ext, rng)
        paths[f'{split}_img_dir'] = osp.join(root, split)
    return paths


# --------------------------------------------------------------------------- classification


def classification_class_names(num_classes: int) -> List[str]:
    """Names of the classes of :func:`write_imagenet_folder` / :func:`write_cifar10` images,
    e.g. ``['red circle', 'green square', ...]``; at most ``len(SHAPES) * len(COLOURS)``.

    Class ``k`` is shape ``SHAPES[k % 8]`` in colour ``(k % 8 + k // 8) % 8``: the first 8
    classes differ in shape and colour, later ones reuse shapes in new colours.
    """
    limit = len(SHAPES) * len(COLOURS)
    if not 1 <= num_classes <= limit:
        raise ValueError(f'num_classes must be in 1..{limit}, got {num_classes}')
    return [f'{_COLOUR_NAMES[_class_colour(k)]} {SHAPES[k % len(SHAPES)]}'
            for k in range(num_classes)]


def _class_colour(label: int) -> int:
    """Index into ``COLOURS`` of class ``label`` (see :func:`classification_class_names`)."""
    return (label % len(SHAPES) + label // len(SHAPES)) % len(COLOURS)


def _class_image(rng: np.random.Generator, label: int, height: int, width: int,
                 tint: Optional[Tuple[int, int, int]] = None) -> np.ndarray:
    """One image ``(H, W, 3)`` uint8 of class ``label``: its shape in its colour, 45-85 %
    of the shorter side, at a random position on a grey background, shifted per channel by
    ``tint`` if given (e.g. ``(24, -12, -12)`` for a reddish grey)."""
    pixels = _background(rng, height, width)
    if tint is not None:
        pixels = np.clip(pixels.astype(np.int16) + np.asarray(tint, np.int16), 0,
                         255).astype(np.uint8)
    extent = rng.uniform(0.45, 0.85) * min(height, width)
    polygon = _scaled_polygon(SHAPES[label % len(SHAPES)], extent)
    w, h = polygon.max(axis=0)
    polygon = polygon + [rng.uniform(0, width - w), rng.uniform(0, height - h)]
    _draw_polygon(pixels, polygon, _jitter(rng, COLOURS[_COLOUR_NAMES[_class_colour(label)]]))
    return pixels


def _balanced_labels(rng: np.random.Generator, num: int, num_classes: int) -> np.ndarray:
    """``num`` labels, each class ``num // num_classes`` or one more times, shuffled."""
    return rng.permutation(np.arange(num) % num_classes)


# --------------------------------------------------------------------------- CIFAR


class _Python2Str(str):
    """A ``str`` that :class:`_Python2Pickler` writes as a Python 2 byte string."""


class _Python2Pickler(pickle._Pickler):
    """Pickles :class:`_Python2Str` as Python 2 ``str`` (``SHORT_BINSTRING`` /
    ``BINSTRING``), which is how the official CIFAR files, written by Python 2's ``cPickle``,
    hold their keys and names.

    Python 3 reads such strings as ``str`` with ``encoding='latin1'`` (as mmpretrain and
    torchvision do) and as ``bytes`` with ``encoding='bytes'`` (the CIFAR page's snippet,
    ``batch[b'data']``). The C pickler has no hook for ``str``, hence the Python one.
    """

    dispatch = pickle._Pickler.dispatch.copy()

    def save_python2_str(self, obj: str) -> None:
        data = obj.encode('latin1')
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack('<i', len(data)) + data)
        self.memoize(obj)

    dispatch[_Python2Str] = save_python2_str


def _python2_strings(obj):
    """``obj`` with every ``str`` among its dict keys, values and list items made a
    :class:`_Python2Str`; other objects (numpy arrays, ints) are kept as they are."""
    if isinstance(obj, str):
        return _Python2Str(obj)
    if isinstance(obj, dict):
        return {_python2_strings(k): _python2_strings(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_python2_strings(v) for v in obj]
    return obj


def _dump_cifar_pickle(obj: dict, path: str) -> str:
    """Write ``obj`` to ``path`` as a protocol-2 pickle whose strings are Python 2 byte
    strings, like the official CIFAR files (see :class:`_Python2Pickler`); return ``path``."""
    with open(path, 'wb') as f:
        _Python2Pickler(f, protocol=2).dump(_python2_strings(obj))
    return path


def _cifar_rows(images: List[np.ndarray]) -> np.ndarray:
    """32x32 RGB images as CIFAR rows, uint8 ``(N, 3072)``: the R, G and B planes, each
    row-major."""
    if not images:
        return np.zeros((0, 3072), np.uint8)
    return np.stack(images).transpose(0, 3, 1, 2).reshape(len(images), 3072)


def _cifar_file_name(rng: np.random.Generator, name: str) -> str:
    """A file name in the style of the official ones, e.g. ``'red_circle_s_000123.png'``."""
    return f"{name.replace(' ', '_')}_s_{rng.integers(10**6):06d}.png"


def write_cifar10(root: str, num_train: int = 100, num_test: int = 20,
                  seed: int = 0) -> Dict[str, str]:
    """Write a small set in the CIFAR-10 "python version" format.

    Layout, as extracted from the official ``cifar-10-python.tar.gz``::

        root/cifar-10-batches-py/
        ├── data_batch_1 ... data_batch_5   (the training images, split evenly)
        ├── test_batch
        └── batches.meta

    Each batch is a protocol-2 pickle of a dict with the keys below. As in the official
    files, keys and names are Python 2 byte strings: Python 3 reads them as ``str`` with
    ``pickle.load(f, encoding='latin1')`` (mmpretrain, torchvision) and as ``bytes`` with
    ``encoding='bytes'``.

    * ``'data'``: uint8 array ``(N, 3072)``; a row is the 32x32 image as three row-major
      planes R, G, B (1024 values each);
    * ``'labels'``: list of N ints in ``0..9``;
    * ``'batch_label'``: e.g. ``'training batch 1 of 5'``;
    * ``'filenames'``: list of N names such as ``'red_circle_s_000123.png'``.

    ``batches.meta`` holds ``'label_names'`` (:data:`CIFAR10_CLASSES`),
    ``'num_cases_per_batch'`` and ``'num_vis'`` (3072).

    The images are class-dependent shapes (see :func:`classification_class_names`), not
    the CIFAR pictures; labels are balanced. mmpretrain's ``CIFAR10`` checks the files'
    md5 sums against the official release, which generated files cannot match: load them
    with ``mmsase.CIFAR10(..., verify_md5=False)`` (see :mod:`mmsase.datasets.cifar`).

    Args:
        root: Output folder (the dataset's ``data_root``).
        num_train: Number of training images; balanced over the classes, then split
            evenly over the 5 training batches in a random order.
        num_test: Number of test images, balanced over the classes.
        seed: Random seed.

    Returns:
        dict: ``root``, ``folder`` (``root/cifar-10-batches-py``), ``meta_file`` and
        ``test_file``.
    """
    folder = osp.join(root, 'cifar-10-batches-py')
    os.makedirs(folder, exist_ok=True)
    names = classification_class_names(10)

    def write_batch(file_name: str, batch_label: str, labels: np.ndarray,
                    rng: np.random.Generator) -> str:
        data = _cifar_rows([_class_image(rng, int(label), 32, 32) for label in labels])
        entry = {
            'batch_label': batch_label,
            'labels': [int(label) for label in labels],
            'data': data,
            'filenames': [_cifar_file_name(rng, names[label]) for label in labels],
        }
        return _dump_cifar_pickle(entry, osp.join(folder, file_name))

    train_rng = np.random.default_rng([seed, 0])
    train_labels = _balanced_labels(train_rng, num_train, 10)
    for i, labels in enumerate(np.array_split(train_labels, 5)):
        write_batch(f'data_batch_{i + 1}', f'training batch {i + 1} of 5', labels, train_rng)
    test_rng = np.random.default_rng([seed, 1])
    test_file = write_batch('test_batch', 'testing batch 1 of 1',
                            _balanced_labels(test_rng, num_test, 10), test_rng)
    meta_file = _dump_cifar_pickle(
        dict(num_cases_per_batch=max(1, -(-num_train // 5)), label_names=list(CIFAR10_CLASSES),
             num_vis=3072), osp.join(folder, 'batches.meta'))
    return dict(root=root, folder=folder, meta_file=meta_file, test_file=test_file)


#: Background tints of the 5 classes of a CIFAR-100 superclass, by their rank in it
#: (alphabetical): neutral, reddish, greenish, bluish and yellowish grey.
_CIFAR100_TINTS = ((0, 0, 0), (24, -12, -12), (-12, 24, -12), (-12, -12, 24), (16, 16, -20))


def _cifar100_image(rng: np.random.Generator, fine_label: int) -> np.ndarray:
    """The 32x32 picture of CIFAR-100 class ``fine_label`` (see :func:`write_cifar100`)."""
    coarse_label = CIFAR100_FINE_TO_COARSE[fine_label]
    members = _CIFAR100_SUPERCLASSES[CIFAR100_COARSE_CLASSES[coarse_label]]
    tint = _CIFAR100_TINTS[members.index(CIFAR100_CLASSES[fine_label])]
    return _class_image(rng, coarse_label, 32, 32, tint=tint)


def write_cifar100(root: str, num_train: int = 500, num_test: int = 100,
                   seed: int = 0) -> Dict[str, str]:
    """Write a small set in the CIFAR-100 "python version" format.

    Layout, as extracted from the official ``cifar-100-python.tar.gz``::

        root/cifar-100-python/
        ├── train   (all training images)
        ├── test
        └── meta

    ``train`` and ``test`` are protocol-2 pickles of a dict with the keys below; keys and
    names are Python 2 byte strings, as in :func:`write_cifar10` and the official files
    (``str`` with ``encoding='latin1'``, ``bytes`` with ``encoding='bytes'``):

    * ``'data'``: uint8 array ``(N, 3072)``; a row is the 32x32 image as three row-major
      planes R, G, B;
    * ``'fine_labels'``: list of N ints in ``0..99`` (names :data:`CIFAR100_CLASSES`);
    * ``'coarse_labels'``: list of N ints in ``0..19`` (names
      :data:`CIFAR100_COARSE_CLASSES`), always ``CIFAR100_FINE_TO_COARSE[fine_label]``;
    * ``'filenames'``: list of N names such as ``'sweet_pepper_s_000123.png'``;
    * ``'batch_label'``: ``'training batch 1 of 1'`` or ``'testing batch 1 of 1'``.

    ``meta`` holds ``'fine_label_names'`` and ``'coarse_label_names'``. Names and the
    fine-to-coarse mapping are the official ones.

    Pictures: class ``k`` of superclass ``c = CIFAR100_FINE_TO_COARSE[k]`` is drawn as
    class ``c`` of :func:`classification_class_names` (``c``'s shape in ``c``'s colour,
    e.g. a red circle for ``aquatic_mammals``) on a grey background tinted by ``k``'s rank
    among the 5 classes of ``c``: neutral, reddish, greenish, bluish, yellowish. So the
    shape and colour give the coarse label, the background the fine one. Fine labels are
    balanced. As for CIFAR-10, load with ``mmsase.CIFAR100(..., verify_md5=False)``.

    Args:
        root: Output folder (the dataset's ``data_root``).
        num_train: Number of training images, balanced over the 100 classes.
        num_test: Number of test images, balanced over the 100 classes.
        seed: Random seed.

    Returns:
        dict: ``root``, ``folder`` (``root/cifar-100-python``), ``train_file``,
        ``test_file`` and ``meta_file``.
    """
    folder = osp.join(root, 'cifar-100-python')
    os.makedirs(folder, exist_ok=True)
    paths = dict(root=root, folder=folder)
    for stream, (split, num, batch_label) in enumerate(
            (('train', num_train, 'training batch 1 of 1'),
             ('test', num_test, 'testing batch 1 of 1'))):
        rng = np.random.default_rng([seed, stream])
        fine = [int(label) for label in _balanced_labels(rng, num, 100)]
        data = _cifar_rows([_cifar100_image(rng, label) for label in fine])
        entry = {
            'filenames': [_cifar_file_name(rng, CIFAR100_CLASSES[label]) for label in fine],
            'batch_label': batch_label,
            'fine_labels': fine,
            'coarse_labels': [CIFAR100_FINE_TO_COARSE[label] for label in fine],
            'data': data,
        }
        paths[f'{split}_file'] = _dump_cifar_pickle(entry, osp.join(folder, split))
    paths['meta_file'] = _dump_cifar_pickle(
        dict(fine_label_names=list(CIFAR100_CLASSES),
             coarse_label_names=list(CIFAR100_COARSE_CLASSES)), osp.join(folder, 'meta'))
    return paths


# --------------------------------------------------------------------------- ImageNet


def write_imagenet_folder(root: str,
                          num_classes: int = 4,
                          images_per_class: int = 8,
                          image_size: ImageSize = (64, 64),
                          seed: int = 0,
                          val_images_per_class: Optional[int] = None) -> Dict[str, str]:
    """Write a small ImageNet-style classification set.

    Layout (as ILSVRC2012 after the usual preparation, with class folders in ``val`` too)::

        root/
        ├── train/n00000000/n00000000_0.JPEG ...   (one folder per class, "wnid")
        ├── val/n00000000/n00000000_val_0.JPEG ...
        └── meta/
            ├── train.txt     "n00000000/n00000000_0.JPEG 0" lines (path relative to train/)
            ├── val.txt       same, relative to val/
            └── classes.txt   one class name per line, line k = label k

    Folder names sort in label order, so folder scanning (no ``ann_file``) and the
    ``meta/*.txt`` lists give the same labels. Images are class-dependent shapes (see
    :func:`classification_class_names`), JPEG quality 95 without chroma subsampling.

    mmpretrain's ``ImageNet`` defaults to the 1000 ImageNet class names, so a config must
    pass the class names: ``classes='<root>/meta/classes.txt'`` (or
    ``metainfo=dict(classes=...)``).

    Args:
        root: Output folder (the dataset's ``data_root``).
        num_classes: Number of classes, 1..64.
        images_per_class: Training images per class.
        image_size: ``(H, W)``, or ``((h_lo, h_hi), (w_lo, w_hi))`` for per-image sizes.
        seed: Random seed.
        val_images_per_class: Validation images per class; defaults to
            ``images_per_class``.

    Returns:
        dict: ``root``, ``train_dir``, ``val_dir``, ``train_ann_file``, ``val_ann_file`` and
        ``classes_file``.
    """
    names = classification_class_names(num_classes)
    size_of = _size_sampler(image_size)
    if val_images_per_class is None:
        val_images_per_class = images_per_class
    meta_dir = osp.join(root, 'meta')
    os.makedirs(meta_dir, exist_ok=True)
    paths = dict(root=root)
    for stream, (split, per_class) in enumerate(
            (('train', images_per_class), ('val', val_images_per_class))):
        rng = np.random.default_rng([seed, stream])
        infix = '_val_' if split == 'val' else '_'
        lines = []
        for label in range(num_classes):
            wnid = f'n{label:08d}'
            os.makedirs(osp.join(root, split, wnid), exist_ok=True)
            for i in range(per_class):
                rel_path = f'{wnid}/{wnid}{infix}{i}.JPEG'
                height, width = size_of(rng)
                Image.fromarray(_class_image(rng, label, height, width)).save(
                    osp.join(root, split, rel_path), format='JPEG', **_SAVE_OPTIONS)
                lines.append(f'{rel_path} {label}\n')
        paths[f'{split}_dir'] = osp.join(root, split)
        paths[f'{split}_ann_file'] = osp.join(meta_dir, f'{split}.txt')
        with open(paths[f'{split}_ann_file'], 'w', encoding='utf-8') as f:
            f.writelines(lines)
    paths['classes_file'] = osp.join(meta_dir, 'classes.txt')
    with open(paths['classes_file'], 'w', encoding='utf-8') as f:
        f.writelines(f'{name}\n' for name in names)
    return paths


# --------------------------------------------------------------------------- digits


def load_digits_32() -> Tuple[np.ndarray, np.ndarray]:
    """scikit-learn's handwritten digits (UCI ML, 1797 images of 8x8, bundled with
    scikit-learn) as 32x32 RGB images.

    Each 8x8 image (values 0..16) is scaled to 0..255, resized to 28x28 (bilinear) and
    padded by 2 black pixels on every side, like MNIST's 28 -> 32 padding; the grey value
    is repeated in the 3 channels (white digit on black).

    Returns:
        tuple: ``images`` uint8 ``(1797, 32, 32, 3)`` and ``labels`` int64 ``(1797,)`` in
        ``0..9``, in scikit-learn's order.
    """
    from sklearn.datasets import load_digits  # scikit-learn is only needed here

    digits = load_digits()
    small = np.clip(digits.images * (255 / 16), 0, 255).astype(np.uint8)
    images = np.zeros((len(small), 32, 32, 3), dtype=np.uint8)
    for i, img in enumerate(small):
        big = np.asarray(Image.fromarray(img).resize((28, 28), Image.Resampling.BILINEAR))
        images[i, 2:30, 2:30] = big[:, :, None]
    return images, digits.target.astype(np.int64)
