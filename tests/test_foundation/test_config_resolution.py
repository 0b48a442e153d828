"""``mmsase.resolve_config``: what tools/train.py and tools/test.py load for their CONFIG.

A path that exists wins; one that does not but names a shipped config (the flat
``configs/<name>.py`` from before the per-method folders, a bare name, another folder)
finds it; anything else is one line that lists the close names. No torch needed here: the
tools themselves run in tests/test_detection/test_flat_config_paths.py.
"""
import os
import os.path as osp

import pytest

import mmsase
from mmsase import _resolve_config

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SHIPPED = osp.realpath(osp.join(ROOT, 'configs', 'sase', 'faster_rcnn_r50_sase_1x_coco.py'))


@pytest.mark.parametrize('path', [
    'configs/faster_rcnn_r50_sase_1x_coco.py',  # the design card's flat path
    './configs/faster_rcnn_r50_sase_1x_coco.py',
    'faster_rcnn_r50_sase_1x_coco.py',
    'configs/se/faster_rcnn_r50_sase_1x_coco.py',  # a folder that does not hold it
    '/no/such/place/configs/faster_rcnn_r50_sase_1x_coco.py',
])
def test_a_missing_path_that_names_a_shipped_config_finds_it(path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # none of these exists from here
    assert mmsase.resolve_config(path) == SHIPPED


def test_the_part_after_configs_wins_over_the_file_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert mmsase.resolve_config('elsewhere/configs/demo/cifar_resnet20_sase_digits.py') == \
        osp.realpath(osp.join(ROOT, 'configs/demo/cifar_resnet20_sase_digits.py'))


def test_an_existing_path_is_never_redirected(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / 'configs').mkdir()
    own = tmp_path / 'configs' / 'faster_rcnn_r50_sase_1x_coco.py'  # a user's own copy
    own.write_text('model = dict()\n')
    for path in ('configs/faster_rcnn_r50_sase_1x_coco.py', str(own)):
        assert mmsase.resolve_config(path) == path
    # the shipped path as given from the repository root is kept as given too
    monkeypatch.chdir(ROOT)
    assert mmsase.resolve_config('configs/sase/faster_rcnn_r50_sase_1x_coco.py') == \
        'configs/sase/faster_rcnn_r50_sase_1x_coco.py'


def test_an_unknown_name_is_one_line_listing_close_names(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError) as info:
        mmsase.resolve_config('configs/faster_rcnn_r50_sasee_1x_coco.py')
    message = str(info.value)
    assert '\n' not in message
    assert "'configs/faster_rcnn_r50_sasee_1x_coco.py' does not exist" in message
    close = message.split('close names: ')[1].split(', ')
    assert close[0] == 'faster_rcnn_r50_sase_1x_coco.py' and len(close) <= 5
    with pytest.raises(FileNotFoundError, match='no shipped config name is close'):
        mmsase.resolve_config('configs/zzzz.py')


def test_resolution_over_given_roots(tmp_path, monkeypatch):
    """Close names come from every root; a name held twice by one root is an error naming
    both places; the first root that has a name wins."""
    monkeypatch.chdir(tmp_path)
    first, second = tmp_path / 'first', tmp_path / 'second'
    for folder in ('a', 'b'):
        os.makedirs(first / folder)
        (first / folder / 'twice.py').write_text('')
    (first / 'a' / 'alpha_config.py').write_text('')
    os.makedirs(second / 'c' / '__pycache__')
    (second / 'c' / 'beta_config.py').write_text('')
    (second / 'c' / '__pycache__' / 'gamma_config.py').write_text('')
    roots = [str(first), str(second)]
    assert _resolve_config('configs/beta_config.py', roots) == \
        osp.realpath(second / 'c' / 'beta_config.py')
    assert _resolve_config('configs/b/twice.py', roots) == osp.realpath(first / 'b' / 'twice.py')
    with pytest.raises(FileNotFoundError, match='a/twice.py, b/twice.py'):
        _resolve_config('configs/twice.py', roots)
    with pytest.raises(FileNotFoundError) as info:
        _resolve_config('configs/xconfig.py', roots)
    assert 'close names: ' in str(info.value)
    close = str(info.value).split('close names: ')[1].split(', ')
    assert set(close) <= {'alpha_config.py', 'beta_config.py'} and close
