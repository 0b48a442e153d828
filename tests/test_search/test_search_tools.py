"""The search through the tools, as a user runs it: tools/train.py on the CPU search config,
--resume, tools/derive_genotype.py (argmax and --method pt), tools/random_genotype.py, and
--genotype hand-off."""
import json
import os.path as osp

import pytest
import torch
from _tools import ROOT
from _tools import run_tool as run_tools_pinned

SEARCH = osp.join(ROOT, 'configs/demo/sase_search_resnet20_digits.py')
# 128 digits -> two halves of 64 -> one bi-level iteration per epoch at batch 64
TINY = ['train_dataloader.dataset.dataset.indices=128',
        'train_cfg.arch_dataloader.dataset.dataset.indices=128',
        'val_dataloader.dataset.indices=64', 'train_cfg.val_interval=10',
        'default_hooks.logger.interval=1']

pytestmark = pytest.mark.slow


def run_tool(*args, check=True):
    return run_tools_pinned(*args, check=check, threads=1)


def alpha_of(path):
    from mmsase.utils.checkpoint import load_checkpoint_file
    return load_checkpoint_file(path)['state_dict']['architecture.alpha']


def search(work_dir, epochs, *extra):
    return run_tool('tools/train.py', SEARCH, '--work-dir', work_dir, *extra, '--cfg-options',
                    f'train_cfg.max_epochs={epochs}', *TINY)


@pytest.fixture(scope='module')
def straight(tmp_path_factory):
    work_dir = str(tmp_path_factory.mktemp('search_straight'))
    search(work_dir, 2)
    return work_dir


def test_resumed_search_ends_like_uninterrupted(straight, tmp_path):
    interrupted = str(tmp_path / 'interrupted')
    search(interrupted, 1)
    out = search(interrupted, 2, '--resume')
    assert 'resumed epoch: 1' in out.stdout + out.stderr
    a = alpha_of(osp.join(straight, 'epoch_2.pth'))
    b = alpha_of(osp.join(interrupted, 'epoch_2.pth'))
    assert torch.equal(a, b)
    with open(osp.join(straight, 'genotype.json')) as f1, \
            open(osp.join(interrupted, 'genotype.json')) as f2:
        g1, g2 = json.load(f1), json.load(f2)
    assert {k: v for k, v in g1.items() if not k.startswith('_')} == \
        {k: v for k, v in g2.items() if not k.startswith('_')}


def test_search_writes_genotype_and_plot(straight):
    assert osp.isfile(osp.join(straight, 'alpha_evolution.png'))
    with open(osp.join(straight, 'genotype.json')) as f:
        genotype = json.load(f)
    assert set(k for k in genotype if not k.startswith('_')) == \
        {'cs', 'ce1', 'ce2', 'ss1', 'ss2', 'se'}


def test_derive_genotype_tool_matches_the_hook(straight, tmp_path):
    out_file = str(tmp_path / 'derived.json')
    out = run_tool('tools/derive_genotype.py', osp.join(straight, 'epoch_2.pth'),
                   '--out', out_file)
    assert 'genotype written to' in out.stdout
    from mmsase.models.sase.supernet import ArchitectureParams
    architecture = ArchitectureParams()
    with torch.no_grad():
        architecture.alpha.copy_(alpha_of(osp.join(straight, 'epoch_2.pth')))
    assert architecture.table() in out.stdout
    with open(out_file) as f1, open(osp.join(straight, 'genotype.json')) as f2:
        derived, logged = json.load(f1), json.load(f2)
    assert {k: v for k, v in derived.items() if not k.startswith('_')} == \
        {k: v for k, v in logged.items() if not k.startswith('_')}
    assert derived['_epoch'] == logged['_epoch'] == 2


def test_derive_genotype_default_output_leaves_the_search_genotype_alone(straight):
    with open(osp.join(straight, 'genotype.json')) as f:
        logged = f.read()
    run_tool('tools/derive_genotype.py', osp.join(straight, 'epoch_1.pth'))
    with open(osp.join(straight, 'epoch_1_genotype.json')) as f:
        derived = json.load(f)
    assert derived['_epoch'] == 1
    assert derived['_checkpoint'] == osp.join(straight, 'epoch_1.pth')
    with open(osp.join(straight, 'genotype.json')) as f:
        assert f.read() == logged


def test_derive_genotype_pt_on_the_search(straight, tmp_path):
    checkpoint = osp.join(straight, 'epoch_2.pth')
    out_file = str(tmp_path / 'pt.json')
    out = run_tool('tools/derive_genotype.py', checkpoint, '--method', 'pt', '--config', SEARCH,
                   '--max-batches', '1', '--out', out_file, '--cfg-options',
                   'train_cfg.arch_dataloader.dataset.dataset.indices=128',
                   'train_cfg.arch_dataloader.batch_size=32')
    assert 'on 1 batches (32 images) of the architecture split' in out.stdout
    with open(out_file) as f:
        derived = json.load(f)
    assert derived['_method'] == 'pt' and derived['_epoch'] == 2
    assert derived['_checkpoint'] == checkpoint
    for edge in ('cs', 'ce1', 'ce2', 'ss1', 'ss2', 'se'):
        assert f'kept {derived[edge]}, argmax ' in out.stdout
    assert osp.isfile(str(tmp_path / 'pt.png'))


def test_derive_genotype_pt_without_config_is_a_clear_error(tmp_path):
    ckpt = tmp_path / 'search.pth'
    torch.save({'state_dict': {'architecture.alpha': torch.zeros(6, 7)}}, ckpt)
    out = run_tool('tools/derive_genotype.py', str(ckpt), '--method', 'pt', check=False)
    assert out.returncode != 0 and '--method pt needs --config CONFIG' in out.stderr
    assert 'Traceback' not in out.stderr


def test_derive_genotype_rejects_non_search_checkpoint(tmp_path):
    ckpt = tmp_path / 'classifier.pth'
    torch.save({'state_dict': {'backbone.conv1.weight': torch.zeros(1)}}, ckpt)
    out = run_tool('tools/derive_genotype.py', str(ckpt), check=False)
    assert out.returncode != 0 and 'is not a search checkpoint' in out.stderr
    torch.save(torch.zeros(3), ckpt)
    out = run_tool('tools/derive_genotype.py', str(ckpt), check=False)
    assert out.returncode != 0 and 'holds a Tensor, not a dict' in out.stderr
    assert 'Traceback' not in out.stderr


def test_random_genotype_feeds_the_configs(tmp_path):
    path = str(tmp_path / 'random.json')
    out = run_tool('tools/random_genotype.py', '--seed', '3', '--out', path)
    again = run_tool('tools/random_genotype.py', '--seed', '3', '--out', path + '2')
    assert out.stdout.splitlines()[0] == again.stdout.splitlines()[0]
    from mmengine.config import Config

    import mmsase
    from mmsase.utils.launch import set_genotype
    for name in ('resnet50_sase_in1k.py', 'faster_rcnn_r50_sase_1x_coco.py'):
        cfg = Config.fromfile(mmsase.config_path(name))
        assert set_genotype(cfg, path) == 1
