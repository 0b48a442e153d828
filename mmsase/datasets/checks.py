"""Clear errors for missing or malformed data sets.

Two layers:

* Functions that validate data without any dataset class:
  :func:`check_coco_annotations` (a loaded COCO dict), :func:`check_coco_file` (a COCO
  JSON file) and :func:`check_classification_ann_file` (an mmpretrain ``"path label"``
  list). They raise :class:`DatasetFormatError` naming the file, the entry and the problem.
* Thin subclasses of the OpenMMLab dataset classes, registered in mmsase's ``DATASETS``,
  that run those checks while loading and raise :class:`DatasetNotFoundError` -- naming the
  missing path and how to provide it -- when the data is not there:

  * ``mmsase.CocoDataset`` (``mmdet.datasets.CocoDataset``): validates the annotation
    file and the class names;
  * ``mmsase.ImageNet`` (``mmpretrain.datasets.ImageNet``): validates ``meta/*.txt`` and
    the class count.

  They take the same arguments and produce the same samples as their parents; the data
  written by :mod:`mmsase.datasets.synthetic` also loads with the parents unchanged.
  ``mmsase.CIFAR10`` and ``mmsase.CIFAR100``, built on the same errors, are in
  :mod:`mmsase.datasets.cifar`.

Only local paths are checked; paths with a URL scheme (``s3://...``) are left to the
storage backend.
"""
import json
import math
import os
import os.path as osp
from typing import List, Optional

from mmdet.datasets import CocoDataset as MMDetCocoDataset
from mmdet.datasets.api_wrappers import COCO as MMDetCOCO
from mmengine.fileio import list_from_file
from mmpretrain.datasets import ImageNet as MMPretrainImageNet

from mmsase.registry import DATASETS

__all__ = [
    'DatasetNotFoundError', 'DatasetFormatError', 'check_coco_annotations', 'check_coco_file',
    'check_classification_ann_file', 'CheckedCOCO', 'CocoDataset', 'ImageNet'
]


class DatasetNotFoundError(FileNotFoundError):
    """A data set's file or folder does not exist; the message says how to provide it."""


class DatasetFormatError(ValueError):
    """A data set's files are malformed or not the expected ones; the message names the
    file, the entries and what is wrong."""


# --------------------------------------------------------------------------- paths


def _is_local(path: str) -> bool:
    return '://' not in str(path)


def _require(path: str, what: str, how: str) -> None:
    """Raise :class:`DatasetNotFoundError` if the local ``path`` does not exist."""
    if path and _is_local(path) and not osp.exists(path):
        raise DatasetNotFoundError(f'{what} {str(path)!r} does not exist '
                                   f'(working directory {os.getcwd()!r}). {how}')


def _coco_how(data_root: str) -> str:
    root = data_root or 'data/coco_synth'
    return (f'To provide it, either run `python tools/generate_data.py coco {root}` for a '
            'small synthetic set and use ann_file=\'annotations/instances_train.json\' (or '
            '\'instances_val.json\'), data_prefix=dict(img=\'train/\') (or \'val/\') and '
            "metainfo=dict(classes=('circle', 'square', 'triangle')); or download COCO 2017 "
            '(https://cocodataset.org: train2017.zip, val2017.zip, '
            'annotations_trainval2017.zip) and unzip it into data/coco, giving '
            'data/coco/annotations/instances_train2017.json, data/coco/train2017/, ...')


def _imagenet_how(root: str) -> str:
    root = root or 'data/imagenet_synth'
    return (f'To provide it, either run `python tools/generate_data.py imagenet {root}` for '
            f"a small synthetic set (and pass classes='{root}/meta/classes.txt'), or "
            'prepare ILSVRC2012 as <data_root>/train/<wnid>/*.JPEG, <data_root>/val/... and '
            '<data_root>/meta/{train,val}.txt ("relative/path label" lines).')


# --------------------------------------------------------------------------- COCO


def _is_number(value) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _segmentation_problem(seg) -> Optional[str]:
    """What is wrong with a COCO ``segmentation`` value, or None if it is well formed:
    a list of polygons ``[[x1, y1, x2, y2, ...], ...]`` or an RLE dict with ``counts`` and
    ``size``. Polygons with fewer than 3 points are accepted (COCO 2017 has a few; mmdet
    drops them)."""
    if isinstance(seg, dict):
        if 'counts' not in seg or 'size' not in seg:
            return "'segmentation' as RLE must have 'counts' and 'size'"
        return None
    if not isinstance(seg, list):
        return ("'segmentation' must be a list of polygons [[x1, y1, x2, y2, ...], ...] "
                f'or an RLE dict, got {type(seg).__name__}')
    for k, polygon in enumerate(seg):
        if not isinstance(polygon, list) or not all(_is_number(v) for v in polygon):
            return (f"'segmentation' polygon {k} must be a flat list of numbers "
                    '[x1, y1, x2, y2, ...]')
        if len(polygon) % 2:
            return (f"'segmentation' polygon {k} has an odd number of coordinates "
                    f'({len(polygon)}); it must be x, y pairs')
    return None


def check_coco_annotations(coco: dict, source: str = '<dict>', max_shown: int = 10) -> None:
    """Validate a loaded COCO instances annotation dict.

    Checks what mmdet's ``CocoDataset`` and ``pycocotools`` rely on:

    * ``images``: a list of dicts with unique int ``id``, str ``file_name`` and positive int
      ``width`` / ``height``;
    * ``categories``: a list of dicts with unique int ``id`` and str ``name``;
    * ``annotations`` (may be absent, as in test-set image lists): dicts with a unique
      ``id``; an ``image_id`` that is in ``images``; a ``category_id`` that is in
      ``categories``; ``bbox`` of 4 finite numbers ``[x, y, w, h]`` with ``w, h >= 0``;
      a finite ``area >= 0``; ``iscrowd`` 0 or 1 if present; ``segmentation``, if present,
      polygons (even-length number lists) or RLE.

    Args:
        coco: The parsed JSON.
        source: Name of the file, for the message.
        max_shown: Most problems listed in the message (all are counted).

    Raises:
        DatasetFormatError: Listing up to ``max_shown`` problems as
            ``annotation id 7 (image_id 3): 'bbox' must be ...``.
    """
    if not isinstance(coco, dict):
        raise DatasetFormatError(f'COCO annotation file {source!r}: the top level must be a '
                              f'JSON object, got {type(coco).__name__}')
    problems: List[str] = []
    for key in ('images', 'categories'):
        if not isinstance(coco.get(key), list):
            problems.append(f'the top level must have a list {key!r}')
    if not isinstance(coco.get('annotations', []), list):
        problems.append("'annotations' must be a list")
    if problems:
        _raise_coco(source, problems, max_shown)

    image_ids, category_ids, ann_ids = set(), set(), set()
    for i, img in enumerate(coco['images']):
        where = f"images[{i}] (id {img.get('id')!r})" if isinstance(img, dict) else \
            f'images[{i}]'
        if not isinstance(img, dict):
            problems.append(f'{where}: must be an object')
            continue
        if not _is_int(img.get('id')):
            problems.append(f"{where}: 'id' must be an integer")
        elif img['id'] in image_ids:
            problems.append(f"{where}: duplicate image 'id'")
        image_ids.add(img.get('id'))
        if not isinstance(img.get('file_name'), str):
            problems.append(f"{where}: 'file_name' must be a string")
        for key in ('width', 'height'):
            if not (_is_int(img.get(key)) and img[key] > 0):
                problems.append(f'{where}: {key!r} must be a positive integer, '
                                f'got {img.get(key)!r}')
    for i, cat in enumerate(coco['categories']):
        if not isinstance(cat, dict) or not _is_int(cat.get('id')):
            problems.append(f"categories[{i}]: must be an object with an integer 'id'")
            continue
        if cat['id'] in category_ids:
            problems.append(f"categories[{i}]: duplicate category id {cat['id']}")
        category_ids.add(cat['id'])
        if not isinstance(cat.get('name'), str):
            problems.append(f"categories[{i}] (id {cat['id']}): 'name' must be a string")

    known_categories = ', '.join(str(c) for c in sorted(category_ids))
    for i, ann in enumerate(coco.get('annotations', [])):
        if not isinstance(ann, dict):
            problems.append(f'annotations[{i}]: must be an object')
            continue
        if 'id' not in ann:
            where = f"annotations[{i}] (no 'id')"
        else:
            where = f"annotation id {ann['id']!r}"
            if ann['id'] in ann_ids:
                problems.append(f'{where}: duplicate annotation id')
            ann_ids.add(ann['id'])
        if 'image_id' in ann:
            where += f" (image_id {ann['image_id']!r})"
        problems.extend(f'{where}: {p}' for p in _annotation_problems(
            ann, image_ids, category_ids, known_categories))
    if problems:
        _raise_coco(source, problems, max_shown)


def _annotation_problems(ann: dict, image_ids: set, category_ids: set,
                         known_categories: str) -> List[str]:
    """Problems of one COCO annotation (see :func:`check_coco_annotations`)."""
    problems = []
    if 'image_id' not in ann:
        problems.append("'image_id' is missing")
    elif ann['image_id'] not in image_ids:
        problems.append(f"'image_id' {ann['image_id']!r} is not the id of any entry of "
                        "'images'")
    if 'category_id' not in ann:
        problems.append("'category_id' is missing")
    elif ann['category_id'] not in category_ids:
        problems.append(f"'category_id' {ann['category_id']!r} is not in 'categories' "
                        f'(ids: {known_categories})')
    bbox = ann.get('bbox')
    if not (isinstance(bbox, (list, tuple)) and len(bbox) == 4
            and all(_is_number(v) for v in bbox)):
        problems.append(f"'bbox' must be 4 numbers [x, y, width, height], got {bbox!r}")
    elif bbox[2] < 0 or bbox[3] < 0:
        problems.append(f"'bbox' {list(bbox)} has a negative width or height")
    if not (_is_number(ann.get('area')) and ann['area'] >= 0):
        problems.append(f"'area' must be a number >= 0, got {ann.get('area')!r}")
    if ann.get('iscrowd', 0) not in (0, 1):
        problems.append(f"'iscrowd' must be 0 or 1, got {ann['iscrowd']!r}")
    if 'segmentation' in ann:
        problem = _segmentation_problem(ann['segmentation'])
        if problem:
            problems.append(problem)
    return problems


def _raise_coco(source: str, problems: List[str], max_shown: int) -> None:
    shown = '\n'.join(f'  - {p}' for p in problems[:max_shown])
    more = f'\n  ... and {len(problems) - max_shown} more' if len(problems) > max_shown \
        else ''
    raise DatasetFormatError(f'Invalid COCO annotation file {source!r}: {len(problems)} '
                          f'problem(s):\n{shown}{more}')


def check_coco_file(path: str) -> dict:
    """Load and validate a COCO annotation JSON file; return the parsed dict.

    Raises:
        DatasetNotFoundError: If ``path`` does not exist.
        DatasetFormatError: If it is not valid JSON or fails :func:`check_coco_annotations`.
    """
    _require(path, 'COCO annotation file', _coco_how(''))
    with open(path, encoding='utf-8') as f:
        try:
            coco = json.load(f)
        except json.JSONDecodeError as e:
            raise DatasetFormatError(
                f'COCO annotation file {path!r} is not valid JSON: {e}') from e
    check_coco_annotations(coco, source=path)
    return coco


class CheckedCOCO(MMDetCOCO):
    """mmdet's COCO API, validating the annotation dict before indexing it.

    ``pycocotools.coco.COCO.__init__`` parses the file and calls :meth:`createIndex`; this
    subclass validates the parsed dict there, so the file is read only once.
    """

    def __init__(self, annotation_file: Optional[str] = None):
        self.annotation_file = annotation_file
        super().__init__(annotation_file)

    def createIndex(self):  # noqa: N802 (pycocotools' name)
        if self.annotation_file is not None:
            check_coco_annotations(self.dataset, source=str(self.annotation_file))
        super().createIndex()


@DATASETS.register_module()
class CocoDataset(MMDetCocoDataset):
    """mmdet's ``CocoDataset`` with clear errors for missing or malformed data.

    Same arguments and samples as ``mmdet.datasets.CocoDataset``. While loading, it raises

    * :class:`DatasetNotFoundError` when ``ann_file`` or the image folder
      ``data_prefix['img']`` does not exist, saying how to generate or download the data;
    * :class:`DatasetFormatError` when an entry of ``ann_file`` is malformed (see
      :func:`check_coco_annotations`) or when none of ``metainfo['classes']`` is a category
      name of the file (which would silently give a data set without objects).
    """

    COCOAPI = CheckedCOCO

    def load_data_list(self) -> List[dict]:
        how = _coco_how(self.data_root)
        _require(self.ann_file, 'COCO annotation file', how)
        _require(self.data_prefix.get('img', ''), 'COCO image folder', how)
        data_list = super().load_data_list()
        if not self.cat_ids:
            classes = tuple(self.metainfo['classes'])
            shown = ', '.join(map(repr, classes[:5])) + (', ...' if len(classes) > 5 else '')
            raise DatasetFormatError(
                f'None of the {len(classes)} classes ({shown}) is a category name in '
                f'{self.ann_file!r}; pass the names of its categories as '
                "metainfo=dict(classes=(...)) (for the synthetic set: ('circle', 'square', "
                "'triangle')).")
        return data_list


# --------------------------------------------------------------------------- mmpretrain


@DATASETS.register_module()
class ImageNet(MMPretrainImageNet):
    """mmpretrain's ``ImageNet`` with clear errors for missing or malformed data.

    Same arguments and samples as ``mmpretrain.datasets.ImageNet``. While loading, it raises

    * :class:`DatasetNotFoundError` when the image folder (``data_root/<split>`` or
      ``data_prefix``) or ``ann_file`` does not exist;
    * :class:`DatasetFormatError` when a line of ``ann_file`` is not ``"<path> <label>"`` with
      ``0 <= label < len(classes)``, or, without ``ann_file``, when the number of class
      folders differs from the number of classes (ImageNet's default is 1000 names: pass
      ``classes=`` for other sets).
    """

    def load_data_list(self) -> List[dict]:
        how = _imagenet_how(self.data_root)
        _require(self.img_prefix, 'ImageNet image folder', how)
        if self.ann_file:
            _require(self.ann_file, 'ImageNet annotation file', how)
            if self.with_label:
                check_classification_ann_file(self.ann_file, len(self.CLASSES))
        elif self.with_label and _is_local(self.img_prefix):
            folders = [d for d in os.listdir(self.img_prefix)
                       if osp.isdir(osp.join(self.img_prefix, d))]
            if len(folders) != len(self.CLASSES):
                raise DatasetFormatError(
                    f'{self.img_prefix!r} has {len(folders)} class folders but the data set '
                    f'has {len(self.CLASSES)} classes; pass the class names with classes=[...] '
                    "or classes='<file with one name per line>' (the synthetic set has "
                    '<data_root>/meta/classes.txt).')
        return super().load_data_list()


def check_classification_ann_file(path: str, num_classes: int) -> None:
    """Validate an mmpretrain annotation list: each line ``"<relative path> <label>"`` with
    an integer ``0 <= label < num_classes`` (paths may contain spaces).

    Raises:
        DatasetNotFoundError: If ``path`` does not exist.
        DatasetFormatError: Naming the file, up to 10 bad lines and what is wrong.
    """
    _require(path, 'Annotation file', _imagenet_how(''))
    problems = []
    for lineno, line in enumerate(list_from_file(path), start=1):
        if not line.strip():
            continue
        parts = line.strip().rsplit(' ', 1)
        if len(parts) != 2 or not parts[1].lstrip('-').isdigit():
            problems.append(f"line {lineno}: expected '<relative path> <integer label>', "
                            f'got {line.strip()!r}')
        elif not 0 <= int(parts[1]) < num_classes:
            problems.append(f'line {lineno}: label {parts[1]} is out of range for '
                            f'{num_classes} classes (0..{num_classes - 1})')
    if problems:
        shown = '\n'.join(f'  - {p}' for p in problems[:10])
        more = f'\n  ... and {len(problems) - 10} more' if len(problems) > 10 else ''
        raise DatasetFormatError(f'Invalid annotation file {path!r}: {len(problems)} '
                              f'problem(s):\n{shown}{more}')
