"""Data sets of mmsase.

Importing this package registers, in :data:`mmsase.registry.DATASETS`:

* ``Digits32`` -- scikit-learn's handwritten digits at 32x32 (a real, embedded data set);
* ``SplitDataset`` / ``HalfSplit`` -- a deterministic part of a random partition;
* ``CocoDataset``, ``CIFAR10``, ``ImageNet`` -- the mmdet / mmpretrain classes with clear
  errors for missing or malformed data (:mod:`.checks`).

and exports the writers of small synthetic sets in the real on-disk formats
(:mod:`.synthetic`, also behind ``tools/generate_data.py``).
"""
from .checks import (CIFAR10, CheckedCOCO, CocoDataset, DatasetFormatError,
                     DatasetNotFoundError, ImageNet, check_classification_ann_file,
                     check_coco_annotations, check_coco_file)
from .digits import Digits32
from .split import SplitDataset, split_indices
from .synthetic import (CIFAR10_CLASSES, COLOURS, SHAPES, classification_class_names,
                        load_digits_32, write_cifar10, write_coco_dataset,
                        write_imagenet_folder)

__all__ = [
    'CIFAR10', 'CIFAR10_CLASSES', 'COLOURS', 'CheckedCOCO', 'CocoDataset',
    'DatasetFormatError', 'DatasetNotFoundError', 'Digits32', 'ImageNet', 'SHAPES',
    'SplitDataset', 'check_classification_ann_file', 'check_coco_annotations',
    'check_coco_file', 'classification_class_names', 'load_digits_32', 'split_indices',
    'write_cifar10', 'write_coco_dataset', 'write_imagenet_folder'
]
