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
    # a bare file name, found in whichever sub-directory of configs/ holds it
    path = mmsase.config_path('faster_rcnn_r50_sase_1x_coco.py')
    assert osp.isfile(path) and path.endswith(osp.join('sase', 'faster_rcnn_r50_sase_1x_coco.py'))
    path = mmsase.config_path('resnet50_cbam_in1k.py')
    assert osp.isfile(path) and path.endswith(osp.join('cbam', 'resnet50_cbam_in1k.py'))
    # a path relative to configs/ (or from the repository root)
    path = mmsase.config_path('demo/cifar_resnet20_sase_digits.py')
    assert osp.isfile(path) and path.endswith(osp.join('demo', 'cifar_resnet20_sase_digits.py'))
    assert osp.samefile(mmsase.config_path('configs/resnet/resnet50_in1k.py'),
                        mmsase.config_path('resnet50_in1k.py'))
    for missing in ('no_such_config.py', 'demo/no_such_config.py'):
        try:
            mmsase.config_path(missing)
        except FileNotFoundError as e:
            assert missing in str(e) and 'looked in' in str(e)
            assert 'configs' in str(e)  # names where it looked
        else:
            raise AssertionError('a missing config must raise')


def test_config_search_refuses_a_name_found_twice(tmp_path):
    from mmsase import _find_config
    first, second = tmp_path / 'first', tmp_path / 'second'
    for folder in ('a', 'b'):
        (first / folder).mkdir(parents=True)
        (first / folder / 'twice.py').write_text('')
    (first / 'a' / 'once.py').write_text('')
    (second / 'c').mkdir(parents=True)
    (second / 'c' / 'only_here.py').write_text('')
    roots = [str(first), str(second)]
    try:
        _find_config('twice.py', roots)
    except FileNotFoundError as e:
        assert 'a/twice.py' in str(e) and 'b/twice.py' in str(e)
    else:
        raise AssertionError('a name found twice must raise')
    assert _find_config('b/twice.py', roots) == str(first / 'b' / 'twice.py')
    assert _find_config('once.py', roots) == str(first / 'a' / 'once.py')
    # the first root that has the name wins; an absent root is skipped and reported
    assert _find_config('only_here.py', roots) == str(second / 'c' / 'only_here.py')
    try:
        _find_config('nowhere.py', [str(tmp_path / 'absent'), str(first)])
    except FileNotFoundError as e:
        assert 'absent (absent)' in str(e) and str(first) in str(e)
    else:
        raise AssertionError('a missing config must raise')
