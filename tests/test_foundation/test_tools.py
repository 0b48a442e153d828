"""tools/train.py and tools/test.py end to end: train 2 iterations, resume, test, and the
same under torchrun with 2 CPU processes (gloo)."""
import os.path as osp
import re

import pytest
import torch
from _tools import ROOT, free_port, run_tool

CLS_CONFIG = osp.join(ROOT, 'configs/demo/cifar_resnet20_sase_digits.py')
# 128 training images at batch 64 = 2 iterations per epoch; 64 test images.
SMALL = ['train_dataloader.dataset.indices=128', 'val_dataloader.dataset.indices=64',
         'test_dataloader.dataset.indices=64', 'default_hooks.logger.interval=1',
         'train_cfg.val_interval=1']


def load(path):
    from mmsase.utils.checkpoint import install_checkpoint_safety, load_checkpoint_file
    install_checkpoint_safety()
    return load_checkpoint_file(path)


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """Train one epoch (2 iterations), then resume it to a second epoch."""
    work_dir = str(tmp_path_factory.mktemp('train_cls'))
    run_tool('tools/train.py', CLS_CONFIG, '--work-dir', work_dir, '--cfg-options',
             'train_cfg.max_epochs=1', *SMALL)
    first = load(osp.join(work_dir, 'epoch_1.pth'))
    resumed = run_tool('tools/train.py', CLS_CONFIG, '--work-dir', work_dir, '--resume',
                       '--cfg-options', 'train_cfg.max_epochs=2', *SMALL)
    return work_dir, first, resumed


def test_train_writes_checkpoint(trained):
    work_dir, first, _ = trained
    assert first['meta']['epoch'] == 1 and first['meta']['iter'] == 2
    assert any('.sase.' in k for k in first['state_dict'])
    assert open(osp.join(work_dir, 'last_checkpoint')).read().strip().endswith('.pth')


def test_resume_continues_from_checkpoint(trained):
    work_dir, first, resumed = trained
    log = resumed.stdout + resumed.stderr
    assert 'resumed epoch: 1, iter: 2' in log, log[-3000:]
    second = load(osp.join(work_dir, 'epoch_2.pth'))
    assert second['meta']['epoch'] == 2 and second['meta']['iter'] == 4
    # the optimizer state went on from the first epoch (momentum buffers exist and moved)
    assert second['optimizer']['state'] and first['optimizer']['state']
    changed = [not torch.equal(first['state_dict'][k], second['state_dict'][k])
               for k in first['state_dict'] if k.endswith('conv1.weight')]
    assert any(changed)


def test_test_tool_prints_accuracy(trained, tmp_path):
    work_dir, _, _ = trained
    out = run_tool('tools/test.py', CLS_CONFIG, osp.join(work_dir, 'epoch_2.pth'),
                   '--work-dir', str(tmp_path), '--cfg-options', *SMALL)
    match = re.search(r'accuracy/top1: ([\d.]+)', out.stdout)
    assert match, out.stdout[-2000:]
    assert 0.0 <= float(match.group(1)) <= 100.0


def test_corrupt_checkpoint_is_a_clear_error(trained, tmp_path):
    work_dir, _, _ = trained
    broken = tmp_path / 'broken.pth'
    data = open(osp.join(work_dir, 'epoch_1.pth'), 'rb').read()
    broken.write_bytes(data[:len(data) // 3])
    out = run_tool('tools/test.py', CLS_CONFIG, str(broken), '--work-dir', str(tmp_path),
                   check=False)
    assert out.returncode == 1
    assert 'broken.pth' in out.stderr and 'truncated or corrupt' in out.stderr
    assert 'Traceback' not in out.stderr


def test_bad_genotype_file_is_a_clear_error(tmp_path):
    bad = tmp_path / 'genotype.json'
    bad.write_text('{"cs": "gap", "ce1": "fc", "ce2": "affine", "ss1": "gap", '
                   '"ss2": "l4", "se": "conv_9"}')
    out = run_tool('tools/train.py', CLS_CONFIG, '--genotype', str(bad), '--work-dir',
                   str(tmp_path), check=False)
    assert out.returncode == 1
    assert 'conv_9' in out.stderr and 'conv_3x3x2' in out.stderr  # names bad and allowed
    assert 'Traceback' not in out.stderr


@pytest.mark.slow
def test_distributed_train_and_test_on_cpu(tmp_path):
    work_dir = str(tmp_path / 'dist')
    env = dict(OMP_NUM_THREADS='1')
    run_tool('-m', 'torch.distributed.run', '--nproc_per_node=2', f'--master_port={free_port()}',
             'tools/train.py', CLS_CONFIG, '--launcher', 'pytorch', '--work-dir', work_dir,
             '--cfg-options', 'train_cfg.max_epochs=1', *SMALL, env=env)
    ckpt = load(osp.join(work_dir, 'epoch_1.pth'))
    # 128 images over 2 ranks at batch 64: one iteration per epoch on each rank
    assert ckpt['meta']['iter'] == 1
    out = run_tool('-m', 'torch.distributed.run', '--nproc_per_node=2',
                   f'--master_port={free_port()}', 'tools/test.py', CLS_CONFIG,
                   osp.join(work_dir, 'epoch_1.pth'), '--launcher', 'pytorch',
                   '--work-dir', work_dir, '--cfg-options', *SMALL, env=env)
    assert re.search(r'accuracy/top1: [\d.]+', out.stdout), out.stdout[-2000:]
