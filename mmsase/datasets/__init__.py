"""Data sets of mmsase.

Importing this package registers, in :data:`mmsase.registry.DATASETS`:

* ``Digits32`` -- scikit-learn's handwritten digits at 32x32 (a real, embedded data set);
* ``ClutteredDigits`` -- those digits at random places among fragments of other digits, the
  cluttered-digit attention testbed of Mnih et al. 2014 (:mod:`.cluttered_digits`);
* ``SplitDataset`` / ``HalfSplit`` -- a deterministic part of a random partition;
* ``PerClassSplit`` -- the first N samples of every class, or the rest (EAN's held-out set);
* ``CocoDataset``, ``ImageNet`` (:mod:`.checks`), ``CIFAR10``, ``CIFAR100`` (:mod:`.cifar`)
  -- the mmdet / mmpretrain classes with clear errors for missing or malformed data;
  ``CIFAR100(label_type='coarse')`` gives the 20 superclasses.

and exports the writers of small synthetic sets in the real on-disk formats
(:mod:`.synthetic`, also behind ``tools/generate_data.py``).
"""
from .checks import (CheckedCOCO, CocoDataset, DatasetFormatError, DatasetNotFoundError,
                     ImageNet, check_classification_ann_file, check_coco_annotations,
                     check_coco_file)
from .cifar import CIFAR10, CIFAR100
from .class_split import PerClassSplit, per_class_indices
from .cluttered_digits import (ClutteredDigits, make_cluttered_digits, upsampled_digits,
                               write_cluttered_digits)
from .digits import Digits32, digits_split_indices
from .split import SplitDataset, split_indices
from .synthetic import (CIFAR10_CLASSES, CIFAR100_CLASSES, CIFAR100_COARSE_CLASSES,
                        CIFAR100_FINE_TO_COARSE, COLOURS, SHAPES, classification_class_names,
                        load_digits_32, write_cifar10, write_cifar100, write_coco_dataset,
                        write_imagenet_folder)

__all__ = [
    'CIFAR10', 'CIFAR10_CLASSES', 'CIFAR100', 'CIFAR100_CLASSES', 'CIFAR100_COARSE_CLASSES',
    'CIFAR100_FINE_TO_COARSE', 'COLOURS', 'CheckedCOCO', 'ClutteredDigits', 'CocoDataset',
    'DatasetFormatError', 'DatasetNotFoundError', 'Digits32', 'ImageNet', 'PerClassSplit',
    'SHAPES', 'SplitDataset',
    'check_classification_ann_file', 'check_coco_annotations', 'check_coco_file',
    'classification_class_names', 'digits_split_indices', 'load_digits_32',
    'make_cluttered_digits', 'per_class_indices', 'split_indices', 'upsampled_digits',
    'write_cifar10', 'write_cifar100', 'write_cluttered_digits', 'write_coco_dataset',
    'write_imagenet_folder'
]
