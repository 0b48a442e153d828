"""New-style (pure-Python, lazy-import) twins of the configs in ``configs/``.

A downstream project inherits one with mmengine's ``read_base``::

    from mmengine.config import read_base

    with read_base():
        from mmsase.configs.cifar_resnet20_sase_digits_lazy import *

    optim_wrapper.optimizer.lr = 0.05

=====================================  =============================================
module                                 twin of
=====================================  =============================================
``cifar_resnet20_sase_digits_lazy``    ``configs/demo/cifar_resnet20_sase_digits.py``
``resnet50_sase_in1k_lazy``            ``configs/sase/resnet50_sase_in1k.py``
``faster_rcnn_r50_sase_1x_coco_lazy``  ``configs/sase/faster_rcnn_r50_sase_1x_coco.py``
=====================================  =============================================

A twin resolves to the same settings as its old-style config (the same classes, values and
model; ``tests/test_foundation/test_new_style_configs.py`` checks it) with one exception:
lazy-import configs ignore ``custom_imports``, as the classes they name are imported when
built. Run them with ``tools/train.py`` / ``tools/test.py``, which import ``mmsase.engine``.

Why the ``_lazy`` suffix: ``mim train mmsase NAME.py`` looks ``NAME.py`` up by file name
anywhere in the installed package and refuses names found twice, so no module here may share
a file name with a config in ``configs/``.

mmengine reads these files, it does not import them: ``from mmsase.configs.x import *``
inside ``read_base()`` is resolved to a file of the *installed* package (a regular
``pip install``; not an editable install, which mmengine cannot locate), and the bases below
are imported relatively (``from ._base_.x import *``), which works from any install.
"""
