"""``mim train`` / ``mim test`` against mmsase installed from its wheel, from a directory
outside the repository.

The wheel is installed with ``pip install --target SITE`` and the commands run with
``PYTHONPATH=SITE``: SITE comes before the venv's site-packages on ``sys.path``, so it
shadows the editable install for imports, for ``importlib.metadata`` and for the
``pkg_resources`` look-ups of mim and mmengine (the wheel's dist-info is in SITE too), while
torch and the OpenMMLab stack still come from the venv.
"""
import os
import os.path as osp
import re
import shutil
import subprocess
import sys

import pytest

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEMO = 'configs/demo/cifar_resnet20_sase_digits.py'
# 128 training images at batch 64 = 2 iterations; 64 validation / test images.
SMALL = ['train_cfg.max_epochs=1', 'train_dataloader.dataset.indices=128',
         'val_dataloader.dataset.indices=64', 'test_dataloader.dataset.indices=64']
ACCURACY = re.compile(r'accuracy/top1: ([\d.]+)')


def copy_source(dest: str) -> None:
    """Copy the working tree's files (tracked or not, minus .gitignore'd ones) to ``dest``.

    The wheel is built from this copy: setup.py writes ``mmsase/.mim`` into the tree it
    builds, and in the repository that would replace the editable install's symlinks.
    """
    listed = subprocess.run(
        ['git', 'ls-files', '-z', '--cached', '--others', '--exclude-standard'],
        cwd=ROOT, capture_output=True, check=True).stdout.decode().split('\0')
    for rel in filter(None, listed):
        src = osp.join(ROOT, rel)
        if osp.isfile(src):  # skips files deleted but not yet staged
            os.makedirs(osp.dirname(osp.join(dest, rel)), exist_ok=True)
            shutil.copy2(src, osp.join(dest, rel))


def pip(*args: str) -> None:
    out = subprocess.run([sys.executable, '-m', 'pip', '--disable-pip-version-check', *args],
                         capture_output=True, text=True)
    assert out.returncode == 0, f'pip {args} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}'


def install_wheel(root: str) -> str:
    """Build mmsase's wheel and install it (no dependencies) into ``root/site``; return
    that directory. Reuses an earlier install in ``root``."""
    site = osp.join(root, 'site')
    if osp.isfile(osp.join(site, 'mmsase', '__init__.py')):
        return site
    src, wheels = osp.join(root, 'src'), osp.join(root, 'wheels')
    copy_source(src)
    pip('wheel', '--no-deps', '--no-build-isolation', '--no-index', '-q', '-w', wheels, src)
    wheel, = [osp.join(wheels, w) for w in os.listdir(wheels) if w.endswith('.whl')]
    pip('install', '--no-deps', '--no-index', '-q', '--target', site, wheel)
    return site


def installed(tmp_path_factory) -> str:
    """The ``--target`` directory of mmsase installed from its wheel, once per session."""
    return install_wheel(str(tmp_path_factory.getbasetemp() / 'mmsase_wheel'))


@pytest.fixture(scope='module')
def site(tmp_path_factory) -> str:
    return installed(tmp_path_factory)


def run(args: list, cwd, site: str) -> str:
    """Run ``python ARGS`` in ``cwd`` with the installed mmsase first on the path; return
    stdout and stderr."""
    env = dict(os.environ, PYTHONPATH=site, OMP_NUM_THREADS='1')
    out = subprocess.run([sys.executable, *args], cwd=str(cwd), env=env, capture_output=True,
                         text=True)
    log = out.stdout + out.stderr
    assert out.returncode == 0, f'{args} failed:\n{log[-6000:]}'
    return log


CHECK_INSTALL = """
import importlib.metadata, os.path as osp, mmsase
pkg = osp.dirname(mmsase.__file__)
print(pkg)
print(importlib.metadata.distribution('mmsase').locate_file('mmsase'))
print(mmsase.config_path('demo/cifar_resnet20_sase_digits.py'))
print(mmsase.config_path('resnet50_cbam_in1k.py'))
for rel in ('.mim/configs/demo/cifar_resnet20_sase_digits.py', '.mim/tools/train.py',
            '.mim/tools/test.py', 'configs/cifar_resnet20_sase_digits_lazy.py',
            'configs/_base_/models/faster_rcnn_r50_fpn.py', '.mim/model-index.yml',
            '.mim/configs/cbam/metafile.yml', '.mim/configs/cbam/README.md'):
    path = osp.join(pkg, rel)
    assert osp.isfile(path) and not osp.islink(path), path
assert not any(osp.islink(osp.join(pkg, '.mim', d)) for d in ('configs', 'tools'))
"""


@pytest.mark.slow
def test_wheel_install_shadows_the_editable_one(site, tmp_path):
    lines = run(['-c', CHECK_INSTALL], tmp_path, site).splitlines()
    package = osp.join(site, 'mmsase')
    assert lines[:4] == [package, package,
                         osp.join(package, '.mim/configs/demo/cifar_resnet20_sase_digits.py'),
                         osp.join(package, '.mim/configs/cbam/resnet50_cbam_in1k.py')]


@pytest.mark.slow
def test_mim_train_and_test(site, tmp_path):
    """``mim train mmsase CONFIG``, CONFIG not a path from the cwd: mim finds it by file name
    in the installed package and runs the package's ``.mim/tools/train.py``."""
    package = osp.join(site, 'mmsase')
    log = run(['-m', 'mim', 'train', 'mmsase', DEMO, '--work-dir', 'work', '--cfg-options',
               *SMALL], tmp_path, site)
    config = osp.join(package, '.mim', DEMO)
    assert f'will use {config} instead' in log, log[-3000:]
    assert f"{osp.join(package, '.mim/tools/train.py')} {config}" in log
    checkpoint = tmp_path / 'work' / 'epoch_1.pth'
    assert checkpoint.is_file(), log[-3000:]

    log = run(['-m', 'mim', 'test', 'mmsase', osp.basename(DEMO), '--checkpoint', str(checkpoint),
               '--work-dir', 'test_work', '--cfg-options', 'test_dataloader.dataset.indices=64'],
              tmp_path, site)
    assert f"{osp.join(package, '.mim/tools/test.py')} {config}" in log
    match = ACCURACY.search(log)
    assert match, log[-3000:]
    assert 0.0 <= float(match.group(1)) <= 100.0
