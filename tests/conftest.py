"""Shared fixtures: tiny generated data sets in the real on-disk formats.

Each fixture writes its set once per test session (under pytest's temporary folder) and
returns the set's root folder as a ``str`` -- the ``data_root`` of a dataset config.
Layouts and formats: :mod:`mmsase.datasets.synthetic`. Keep these sets tiny: many tests
share them and the machine is small.

Registry scope: mmengine's default scope (``DefaultScope``) is process-wide, and
``init_default_scope`` or a ``Runner`` in one test would otherwise leak into the tests after it
(an ``mmdet`` scope makes mmpretrain's builders look in mmdet's registries). Every module and
every test starts from the scope it found and gets it back afterwards, so each test sets the
scope it needs and the suite passes in any order.
"""
import pytest


def _scope_state():
    from mmengine.registry import DefaultScope
    return DefaultScope._instance_dict.copy()


def _restore_scope_state(saved) -> None:
    from mmengine.registry import DefaultScope
    if DefaultScope._instance_dict != saved:
        DefaultScope._instance_dict.clear()
        DefaultScope._instance_dict.update(saved)


@pytest.fixture(autouse=True, scope='module')
def _module_default_scope():
    """What a module's tests (and its module-scoped fixtures) do to the default scope stays in
    the module."""
    saved = _scope_state()
    yield
    _restore_scope_state(saved)


@pytest.fixture(autouse=True)
def _test_default_scope():
    """What a test does to the default scope stays in the test."""
    saved = _scope_state()
    yield
    _restore_scope_state(saved)


@pytest.fixture(scope='session')
def coco_root(tmp_path_factory) -> str:
    """COCO-format shapes: ``train/`` 8 and ``val/`` 4 JPEG images whose height and width
    are each drawn from 64..131 (odd sizes included), 1-3 objects each, classes
    ``('circle', 'square', 'triangle')``; ``annotations/instances_{train,val}.json``."""
    from mmsase.datasets.synthetic import write_coco_dataset
    root = str(tmp_path_factory.mktemp('coco_synth'))
    write_coco_dataset(root, num_train=8, num_val=4, image_size=((64, 131), (64, 131)),
                       num_classes=3, seed=0)
    return root


@pytest.fixture(scope='session')
def cifar10_root(tmp_path_factory) -> str:
    """CIFAR-10 python-format batches in ``cifar-10-batches-py/``: 40 training images
    (8 per ``data_batch_*``, 4 per class) and 20 test images (2 per class). Load with
    ``mmsase.CIFAR10(data_root=cifar10_root, verify_md5=False)``."""
    from mmsase.datasets.synthetic import write_cifar10
    root = str(tmp_path_factory.mktemp('cifar10_synth'))
    write_cifar10(root, num_train=40, num_test=20, seed=0)
    return root


@pytest.fixture(scope='session')
def cifar100_root(tmp_path_factory) -> str:
    """CIFAR-100 python-format files in ``cifar-100-python/``: ``train`` 200 images (2 per
    fine class, 10 per superclass), ``test`` 100 (1 per fine class), ``meta``. Load with
    ``mmsase.CIFAR100(data_root=cifar100_root, verify_md5=False)`` (``label_type='coarse'``
    for the 20 superclasses)."""
    from mmsase.datasets.synthetic import write_cifar100
    root = str(tmp_path_factory.mktemp('cifar100_synth'))
    write_cifar100(root, num_train=200, num_test=100, seed=0)
    return root


@pytest.fixture(scope='session')
def imagenet_root(tmp_path_factory) -> str:
    """ImageNet-style folders: 4 classes (``n00000000`` .. ``n00000003``), 4 training and
    2 validation 64x64 JPEGs per class, ``meta/{train,val,classes}.txt``. Load with
    ``ImageNet(data_root=imagenet_root, split='train',
    classes=imagenet_root + '/meta/classes.txt')``."""
    from mmsase.datasets.synthetic import write_imagenet_folder
    root = str(tmp_path_factory.mktemp('imagenet_synth'))
    write_imagenet_folder(root, num_classes=4, images_per_class=4, image_size=(64, 64),
                          seed=0, val_images_per_class=2)
    return root
