"""A downstream project's config inheriting an mmsase config, old style (``_base_``) and new
style (``read_base``), trained from a directory outside the repository against mmsase
installed from its wheel (see test_mim.py for the install)."""
import os.path as osp

import pytest
# pytest puts this directory on sys.path (its default "prepend" import mode)
from test_mim import SMALL, installed, run

OLD_STYLE = """\
_base_ = [__import__('mmsase').config_path('demo/cifar_resnet20_sase_digits.py')]

optim_wrapper = dict(optimizer=dict(lr=0.05))
"""
NEW_STYLE = """\
from mmengine.config import read_base

with read_base():
    from mmsase.configs.cifar_resnet20_sase_digits_lazy import *

optim_wrapper.optimizer.lr = 0.02
"""


@pytest.fixture(scope='module')
def site(tmp_path_factory) -> str:
    return installed(tmp_path_factory)


def trained_checkpoint(work_dir: str) -> dict:
    from mmsase.utils.checkpoint import install_checkpoint_safety, load_checkpoint_file
    install_checkpoint_safety()
    return load_checkpoint_file(osp.join(work_dir, 'epoch_1.pth'))


@pytest.mark.slow
def test_old_style_config_inherits_an_mmsase_config(site, tmp_path):
    (tmp_path / 'my_cfg.py').write_text(OLD_STYLE)
    log = run(['-m', 'mim', 'train', 'mmsase', 'my_cfg.py', '--work-dir', 'work',
               '--cfg-options', *SMALL], tmp_path, site)
    # a config path that exists is used as it is, with the package's training script
    assert f"{osp.join(site, 'mmsase/.mim/tools/train.py')} my_cfg.py " in log
    checkpoint = trained_checkpoint(str(tmp_path / 'work'))
    assert checkpoint['meta']['epoch'] == 1, log[-3000:]
    assert checkpoint['optimizer']['param_groups'][0]['initial_lr'] == 0.05
    assert any('.sase.' in key for key in checkpoint['state_dict'])


@pytest.mark.slow
def test_new_style_config_inherits_an_mmsase_config(site, tmp_path):
    (tmp_path / 'my_cfg_new.py').write_text(NEW_STYLE)
    train = osp.join(site, 'mmsase', '.mim', 'tools', 'train.py')
    log = run([train, 'my_cfg_new.py', '--work-dir', 'work', '--cfg-options', *SMALL],
              tmp_path, site)
    checkpoint = trained_checkpoint(str(tmp_path / 'work'))
    assert checkpoint['meta']['epoch'] == 1, log[-3000:]
    assert checkpoint['optimizer']['param_groups'][0]['initial_lr'] == 0.02
    assert any('.sase.' in key for key in checkpoint['state_dict'])


@pytest.mark.slow
def test_the_wheel_ships_the_kernel_sources(site):
    """The C++ kernels are compiled on first use, from the sources the package ships."""
    for rel in ('models/sase/csrc/sase_fused.cpp', 'models/search_space/csrc/power_sums.cpp',
                'models/search_space/csrc/power_sums_kernels.h',
                'models/search_space/csrc/conv_stacks.cpp'):
        assert osp.isfile(osp.join(site, 'mmsase', rel)), rel
