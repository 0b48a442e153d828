"""The design card's commands as written, from before the configs moved into per-method
folders::

    python tools/train.py configs/faster_rcnn_r50_sase_1x_coco.py
    python tools/test.py configs/faster_rcnn_r50_sase_1x_coco.py CHECKPOINT

(and the same through tools/dist_*.sh and mim): the flat path resolves to
configs/sase/faster_rcnn_r50_sase_1x_coco.py, and the tool says so in one line. The shipped
config runs with the command-line overrides a user with a small set would give: the data
root, the three classes, a small input scale, a quarter-width detector, no ImageNet weights.
"""
import os
import os.path as osp
import re
import subprocess
import sys

import pytest

from _tools import free_port

from .helpers import ROOT, run_tool

FLAT = 'configs/faster_rcnn_r50_sase_1x_coco.py'
SHIPPED = osp.realpath(osp.join(ROOT, 'configs/sase/faster_rcnn_r50_sase_1x_coco.py'))
RESOLVED = f'config: {FLAT} -> {SHIPPED}'
MAP = re.compile(r'^coco/bbox_mAP: -?[\d.]+$', re.M)

# quarter-width R50 (as configs/demo/faster_rcnn_r50_sase_synth.py), 64-channel FPN and heads,
# three classes; the same in the checkpoint built here and on the tools' command lines
MODEL = {
    'model.backbone.stem_channels': 16,
    'model.backbone.base_channels': 16,
    'model.neck.in_channels': [64, 128, 256, 512],
    'model.neck.out_channels': 64,
    'model.rpn_head.in_channels': 64,
    'model.rpn_head.feat_channels': 64,
    'model.roi_head.bbox_roi_extractor.out_channels': 64,
    'model.roi_head.bbox_head.in_channels': 64,
    'model.roi_head.bbox_head.fc_out_channels': 256,
    'model.roi_head.bbox_head.num_classes': 3,
}
CLASSES = 'metainfo.classes=[circle,square,triangle]'


def cli(options: dict) -> list:
    return [f'{k}={v}'.replace(' ', '') for k, v in options.items()]


def train_options(coco_root: str) -> list:
    """One iteration: 4 training images at batch 4, no validation."""
    root = coco_root.rstrip('/') + '/'
    data = 'train_dataloader.dataset.'
    return cli(MODEL) + [
        f'{data}data_root={root}', f'{data}ann_file=annotations/instances_train.json',
        f'{data}data_prefix.img=train/', data + CLASSES, f'{data}pipeline.2.scale=(160,128)',
        f'{data}indices=4', 'train_dataloader.batch_size=4', 'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False', 'model.backbone.init_cfg=None',
        'train_cfg.max_epochs=1', 'val_cfg=None', 'val_dataloader=None', 'val_evaluator=None',
        'test_cfg=None', 'test_dataloader=None', 'test_evaluator=None',
        'default_hooks.logger.interval=1',
    ]


def eval_options(coco_root: str) -> list:
    """COCO mAP on the 4 validation images."""
    root = coco_root.rstrip('/') + '/'
    data = 'test_dataloader.dataset.'
    return cli(MODEL) + [
        f'{data}data_root={root}', f'{data}ann_file=annotations/instances_val.json',
        f'{data}data_prefix.img=val/', data + CLASSES, f'{data}pipeline.1.scale=(160,128)',
        'test_dataloader.num_workers=0', 'test_dataloader.persistent_workers=False',
        f'test_evaluator.ann_file={root}annotations/instances_val.json',
    ]


def run_script(script: str, *args: str) -> subprocess.CompletedProcess:
    """``bash SCRIPT ARGS...`` from the repository root with this interpreter as PYTHON."""
    env = dict(os.environ, PYTHON=sys.executable, PORT=str(free_port()))
    out = subprocess.run(['bash', script, *args], cwd=ROOT, env=env, capture_output=True,
                         text=True)
    assert out.returncode == 0, f'{script} failed:\n{out.stdout[-3000:]}\n{out.stderr[-5000:]}'
    return out


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory) -> str:
    """A freshly built model of the shipped config (with MODEL's overrides), saved as a
    training run saves one."""
    import torch
    from mmdet.registry import MODELS
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    cfg = Config.fromfile(SHIPPED)
    cfg.merge_from_dict(MODEL)
    init_default_scope('mmdet')
    model = MODELS.build(cfg.model)
    path = str(tmp_path_factory.mktemp('flat_config') / 'faster_rcnn_r50_sase.pth')
    torch.save({'meta': {}, 'state_dict': model.state_dict()}, path)
    return path


def test_train_tool_runs_the_flat_path(coco_root, tmp_path):
    assert not osp.exists(osp.join(ROOT, FLAT))
    out = run_tool('tools/train.py', FLAT, '--work-dir', str(tmp_path), '--cfg-options',
                   *train_options(coco_root))
    assert RESOLVED in out.stdout.splitlines()
    assert osp.isfile(tmp_path / 'epoch_1.pth')
    log = out.stdout + out.stderr
    assert 'Epoch(train) [1][1/1]' in log and 'loss_rpn_cls' in log


def test_test_tool_runs_the_flat_path(checkpoint, coco_root, tmp_path):
    out = run_tool('tools/test.py', FLAT, checkpoint, '--work-dir', str(tmp_path),
                   '--cfg-options', *eval_options(coco_root))
    assert RESOLVED in out.stdout.splitlines()
    assert MAP.search(out.stdout), out.stdout[-3000:]


@pytest.mark.parametrize('tool', ['train', 'test'])
def test_unknown_config_is_one_error_line_with_close_names(tool, tmp_path):
    typo = 'configs/faster_rcnn_r50_sasee_1x_coco.py'
    args = [f'tools/{tool}.py', typo] + ([str(tmp_path / 'none.pth')] if tool == 'test' else [])
    out = run_tool(*args, '--work-dir', str(tmp_path), check=False)
    assert out.returncode == 1
    assert 'Traceback' not in out.stderr
    errors = [line for line in out.stderr.splitlines() if line.startswith('error:')]
    assert len(errors) == 1, out.stderr[-3000:]
    assert f"'{typo}' does not exist" in errors[0]
    close = errors[0].split('close names: ')[1].split(', ')
    assert 'faster_rcnn_r50_sase_1x_coco.py' in close
    assert not os.listdir(tmp_path)  # it stopped before creating anything


@pytest.mark.slow
def test_dist_script_runs_the_flat_path(coco_root, tmp_path):
    """One process under torchrun (gloo on a CPU machine). dist_test.sh hands its CONFIG to
    tools/test.py the same way; mim finds a missing path by its file name itself
    (tests/test_foundation/test_mim.py)."""
    out = run_script('tools/dist_train.sh', FLAT, '1', '--work-dir', str(tmp_path / 'train'),
                     '--cfg-options', *train_options(coco_root))
    assert out.stdout.splitlines().count(RESOLVED) == 1
    assert osp.isfile(tmp_path / 'train' / 'epoch_1.pth')


