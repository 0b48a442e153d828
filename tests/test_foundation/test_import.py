import subprocess
import sys


def test_import_mmsase_is_light():
    """`import mmsase` must not pull in torch or the OpenMMLab stack."""
    code = ('import sys, mmsase; heavy = [m for m in ("torch", "mmengine", "mmcv", '
            '"mmdet", "mmpretrain") if m in sys.modules]; print(heavy)')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == '[]'


def test_config_path_finds_shipped_configs():
    import os.path as osp

    import mmsase
    path = mmsase.config_path('faster_rcnn_r50_sase_1x_coco.py')
    assert osp.isfile(path)
    try:
        mmsase.config_path('no_such_config.py')
    except FileNotFoundError as e:
        assert 'no_such_config.py' in str(e)
    else:
        raise AssertionError('a missing config must raise')
